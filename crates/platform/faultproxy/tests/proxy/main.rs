//! The fault proxy's integration tests, linked into one binary (one link instead of several).
//! Every test runs real TCP on free local ports, with the upstream started in the test; the
//! timings are real, so the bounds are generous on the slow side.

mod api;
mod links;
mod postgres;
mod support;
mod toxics;
