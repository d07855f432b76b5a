//! Why a catalog request is refused, and the problem+json each reason becomes.

use flotilla_chassis::problem::Problem;

use crate::contract::{MAX_FEATURED, MAX_LOOKUP_IDS, MAX_QUERY_CHARS};

/// Why a catalog request was refused. Mapped to problem+json below, the one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// No product has this id (or the id is not even of the product id shape).
    #[error("no product with id {0:?}")]
    UnknownProduct(String),
    /// No category has this slug.
    #[error("no category {0:?}")]
    UnknownCategory(String),
    /// The search text is missing, blank or too long.
    #[error("q must be between 1 and {MAX_QUERY_CHARS} characters")]
    InvalidQuery,
    /// The featured limit is out of range.
    #[error("limit must be between 1 and {MAX_FEATURED}")]
    InvalidLimit,
    /// A lookup asked for too many ids.
    #[error("at most {MAX_LOOKUP_IDS} ids per lookup, got {0}")]
    TooManyIds(usize),
}

impl From<CatalogError> for Problem {
    fn from(err: CatalogError) -> Self {
        let detail = err.to_string();
        match err {
            CatalogError::UnknownProduct(_) | CatalogError::UnknownCategory(_) => {
                Problem::not_found(detail)
            }
            CatalogError::InvalidQuery | CatalogError::InvalidLimit => Problem::bad_request(detail),
            CatalogError::TooManyIds(_) => Problem::invalid("ids", detail),
        }
    }
}
