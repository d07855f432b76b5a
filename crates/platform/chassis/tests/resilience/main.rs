//! The resilience layers against real chassis routers, in-process and over HTTP on local
//! sockets (RELIABILITY.md F8, F11, F12: answers at the deadline, never later). One binary.

mod deadline;
