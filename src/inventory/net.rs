//! IP networks as the inventory names them (`10.3.0.0/24`), and the addresses Kubernetes
//! derives from them: the first service IP is the `kubernetes` service, the DNS service
//! is an agreed host further on.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network in CIDR notation whose address has no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    fn bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn to_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => u32::from(v4) as u128,
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    /// The n-th address of the network (0 is the network address itself), if it lies inside.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = u32::from(self.bits() - self.prefix);
        let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        if n >= size {
            return None;
        }
        let v = Self::to_u128(self.addr) + n;
        Some(match self.addr {
            IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(v.into()),
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let host_bits = u32::from(self.bits() - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        Self::to_u128(ip) & mask == Self::to_u128(self.addr) & mask
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not in CIDR notation; write it like 10.3.0.0/24"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("'{a}' in '{s}' is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("'/{p}' in '{s}' is not a prefix length"))?;
        let cidr = Cidr { addr, prefix };
        if prefix > cidr.bits() {
            return Err(format!(
                "prefix /{prefix} in '{s}' is longer than the address ({} bits)",
                cidr.bits()
            ));
        }
        let host_bits = u32::from(cidr.bits() - prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        if Self::to_u128(addr) & !mask & (u128::MAX >> (128 - cidr.bits())) != 0 {
            let net = Cidr {
                addr: match addr {
                    IpAddr::V4(_) => IpAddr::V4(((Self::to_u128(addr) & mask) as u32).into()),
                    IpAddr::V6(_) => IpAddr::V6((Self::to_u128(addr) & mask).into()),
                },
                prefix,
            };
            return Err(format!("'{s}' has host bits set; did you mean {net}?"));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_contains() {
        let c: Cidr = "10.3.0.0/24".parse().unwrap();
        assert_eq!(c.nth(1).unwrap().to_string(), "10.3.0.1");
        assert_eq!(c.nth(10).unwrap().to_string(), "10.3.0.10");
        assert_eq!(c.nth(256), None);
        assert!(c.contains("10.3.0.200".parse().unwrap()));
        assert!(!c.contains("10.3.1.0".parse().unwrap()));
    }

    #[test]
    fn refuses_bad() {
        assert!("10.3.0.1/24"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("10.3.0.0/24"));
        assert!("10.3.0.0/33".parse::<Cidr>().is_err());
        assert!("10.3.0.0".parse::<Cidr>().is_err());
        assert!("fd00::/64".parse::<Cidr>().is_ok());
    }
}
