//! Who a client is, for limits: [`ClientKey`] (an IPv4 address, or the /64 of an IPv6 one,
//! since one IPv6 host or subscriber usually holds a whole /64), and [`Connections`], the
//! open-connection caps in total and per client.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The unit a client is limited as: an IPv4 address, or an IPv6 /64 (an IPv4-mapped IPv6
/// address counts as its IPv4 address). Keying on the exact IPv6 address would let a
/// client rotate through the 2^64 addresses of its own prefix around every limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The service holds `max_connections` already.
    Total,
    /// This client holds `max_connections_per_address` already.
    PerClient,
}

/// Open connections, capped in total and per [`ClientKey`], so that one address holding
/// idle connections cannot lock every other client out.
pub struct Connections {
    total: usize,
    per_client: usize,
    open: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

impl Connections {
    pub fn new(total: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Connections {
            total,
            per_client,
            open: Mutex::new(Counts::default()),
        })
    }

    /// Count a new connection from `ip`, or say why not. The slot is freed when the
    /// returned permit is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let key = ClientKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_client.get(&key).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(Refusal::PerClient);
        }
        if open.total >= self.total {
            return Err(Refusal::Total);
        }
        open.total += 1;
        *open.by_client.entry(key).or_insert(0) += 1;
        Ok(ConnectionPermit {
            connections: self.clone(),
            key,
        })
    }

    /// Open connections in total and from `ip`'s client.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_client.get(&ClientKey::of(ip)).copied().unwrap_or(0);
        (open.total, mine)
    }
}

/// One counted connection.
pub struct ConnectionPermit {
    connections: Arc<Connections>,
    key: ClientKey,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            ClientKey::of(ip("192.0.2.7")),
            ClientKey::of(ip("192.0.2.8"))
        );
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn caps_hold_per_client_and_in_total_and_free_on_drop() {
        let c = Connections::new(3, 2);
        let a1 = c.admit(ip("10.0.0.1")).unwrap();
        let _a2 = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1")).err(), Some(Refusal::PerClient));
        let _b1 = c.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.3")).err(), Some(Refusal::Total));
        drop(a1);
        assert_eq!(c.open(ip("10.0.0.1")), (2, 1));
        let _c1 = c.admit(ip("10.0.0.3")).unwrap();
        // Another address of the same IPv6 /64 shares its client's slots.
        let c6 = Connections::new(10, 1);
        let _x = c6.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(c6.admit(ip("2001:db8::2")).err(), Some(Refusal::PerClient));
        assert!(c6.admit(ip("2001:db8:0:1::2")).is_ok());
    }
}
