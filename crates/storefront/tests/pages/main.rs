//! The storefront's pages, tested the way a browser uses them: over HTTP, against a real fleet
//! (catalog, identity, cart, storefront, and for checkout orders with inventory, payments and
//! shipping) started in-process. One test binary for all of them, so the suite links once.

mod account;
mod browse;
mod cart;
mod degradation;
mod fleet;
mod limits;
mod orders;
