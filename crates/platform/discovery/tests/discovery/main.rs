//! Discovery backends and the balanced transport against real things: etcd processes started
//! per test, servers on random ports, the system's resolver. One binary for all of them (one
//! link instead of several).

mod balanced;
mod dns;
#[cfg(feature = "etcd")]
mod etcd;
mod outlier;
mod static_list;
mod support;
