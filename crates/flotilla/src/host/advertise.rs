//! The URL a process registers its listeners under in discovery: what other processes, on other
//! machines or in other pods, connect to.
//!
//! A listener bound to an unspecified address (`0.0.0.0`, `::`, as in every container) answers
//! on all of the machine's addresses, but registering `127.0.0.1` would send every caller to
//! itself. Without `advertise_host` the process advertises the address of the interface that
//! routes outward: the local address the kernel picks for a UDP socket `connect`ed to a public
//! address (connecting a UDP socket sends nothing; it only chooses the route). In a pod that is
//! the pod's IP, on a machine its main address. Only when no route exists (a machine with
//! loopback alone) does it fall back to `127.0.0.1`, with a warning.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Where the outward route is looked up: documentation addresses (RFC 5737, RFC 3849), never
/// sent to, and any other public address would choose the same default route.
const OUTWARD_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const OUTWARD_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

/// The URL of the listener bound at `addr`: on `advertise_host` when configured, on the bound
/// address when it is a specific one, otherwise on [`outward_address`] of its family.
pub fn url(advertise_host: Option<&str>, addr: SocketAddr) -> String {
    url_with(advertise_host, addr, outward_address)
}

/// [`url`] with the outward lookup given, so the choice is tested without the machine's routes.
fn url_with(
    advertise_host: Option<&str>,
    addr: SocketAddr,
    outward: impl FnOnce(IpAddr) -> std::io::Result<IpAddr>,
) -> String {
    if let Some(host) = advertise_host {
        return format!("http://{host}:{}", addr.port());
    }
    let ip = if addr.ip().is_unspecified() {
        match outward(addr.ip()) {
            Ok(ip) => ip,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    bound = %addr,
                    "no outward interface to advertise: registering 127.0.0.1, which only this \
                     machine reaches; set FLOTILLA_ADVERTISE_HOST"
                );
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        }
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The address of the interface that routes outward from a socket bound like `unspecified`
/// (`0.0.0.0` or `::`), or why there is none.
pub fn outward_address(unspecified: IpAddr) -> std::io::Result<IpAddr> {
    let target = match unspecified {
        IpAddr::V4(_) => OUTWARD_V4,
        IpAddr::V6(_) => OUTWARD_V6,
    };
    let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
    socket.connect(SocketAddr::new(target, 9))?;
    let ip = socket.local_addr()?.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        return Err(std::io::Error::other(format!(
            "the route to {target} leaves through {ip}"
        )));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::{outward_address, url, url_with};
    use std::net::{IpAddr, SocketAddr};

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_unspecified_bind_advertises_the_outward_interface_not_loopback() {
        let pod_ip: IpAddr = "10.244.1.17".parse().expect("ip");
        let advertised = url_with(None, addr("0.0.0.0:8080"), |_| Ok(pod_ip));
        assert_eq!(advertised, "http://10.244.1.17:8080");
        let v6: IpAddr = "fd00::17".parse().expect("ip");
        let advertised = url_with(None, addr("[::]:8080"), |_| Ok(v6));
        assert_eq!(advertised, "http://[fd00::17]:8080");
    }

    #[test]
    fn without_an_outward_route_it_falls_back_to_loopback() {
        let advertised = url_with(None, addr("0.0.0.0:8080"), |_| {
            Err(std::io::Error::other("no route"))
        });
        assert_eq!(advertised, "http://127.0.0.1:8080");
    }

    #[test]
    fn a_configured_host_or_a_specific_bind_is_advertised_as_it_is() {
        let never = |_| -> std::io::Result<IpAddr> { panic!("not looked up") };
        assert_eq!(
            url_with(Some("catalog"), addr("0.0.0.0:8080"), never),
            "http://catalog:8080"
        );
        // `flotilla up`'s local fleet: bound to 127.0.0.1, advertised there, as before.
        assert_eq!(
            url_with(None, addr("127.0.0.1:9003"), never),
            "http://127.0.0.1:9003"
        );
        assert_eq!(
            url_with(None, addr("10.0.0.5:8080"), never),
            "http://10.0.0.5:8080"
        );
    }

    /// On this machine: the route lookup names an address of one of its interfaces, never
    /// loopback or unspecified, or says why not (a machine without a default route).
    #[test]
    fn the_outward_address_is_a_real_interface_of_this_machine() {
        match outward_address("0.0.0.0".parse().expect("ip")) {
            Ok(ip) => {
                assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
                // Bindable here: it is this machine's own.
                std::net::TcpListener::bind(SocketAddr::new(ip, 0)).expect("own address");
                assert_eq!(url(None, addr("0.0.0.0:8080")), format!("http://{ip}:8080"));
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
}
