//! Paging: the query parameters every list endpoint takes and the envelope it answers with.
//! The maximum page size is explicit, and asking for more is a 400 rather than a silent clamp,
//! so a client never mistakes a short page for the end of the list.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;

/// `?page=&page_size=` (1-based page).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
pub struct PageParams {
    /// Page number, starting at 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    pub page: Option<u32>,
    /// Items per page (default 20; at most the service's maximum).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
}

/// The default page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Deepest page anyone may ask for; keeps OFFSET arithmetic bounded.
pub const MAX_PAGE: u32 = 100_000;

impl PageParams {
    /// Validates against `max_page_size`.
    pub fn validate(self, max_page_size: u32) -> Result<PageRequest, Problem> {
        let page = self.page.unwrap_or(1);
        let page_size = self
            .page_size
            .unwrap_or(DEFAULT_PAGE_SIZE.min(max_page_size));
        if page == 0 || page > MAX_PAGE {
            return Err(Problem::bad_request(format!(
                "page must be between 1 and {MAX_PAGE}"
            )));
        }
        if page_size == 0 || page_size > max_page_size {
            return Err(Problem::bad_request(format!(
                "page_size must be between 1 and {max_page_size}"
            )));
        }
        Ok(PageRequest { page, page_size })
    }
}

impl PageRequest {
    /// SQL LIMIT.
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    /// SQL OFFSET.
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: u64,
    /// This page's number (1-based).
    pub page: u32,
    /// The page size used.
    pub page_size: u32,
}

impl<T> Page<T> {
    /// Number of pages in the whole list.
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.page_size.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_bounds() {
        let ok = PageParams {
            page: Some(3),
            page_size: Some(10),
        }
        .validate(100)
        .expect("ok");
        assert_eq!((ok.limit(), ok.offset()), (10, 20));
        assert!(
            PageParams {
                page: Some(0),
                page_size: None
            }
            .validate(100)
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(101)
            }
            .validate(100)
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(0)
            }
            .validate(100)
            .is_err()
        );
        assert_eq!(PageParams::default().validate(5).expect("ok").page_size, 5);
    }
}
