//! Choosing a route's target: weighted round robin, weighted random, the
//! less busy of two (power of two choices on requests in flight), or
//! consistent (rendezvous) hashing on a key of the request; backup targets
//! only when no primary takes traffic. Targets out of service (an open
//! circuit, failed health checks: [`super::health`]) are skipped; a retry
//! goes to a target not tried yet. Built once per configuration; on the
//! request path, a few atomics and arithmetic, no allocation.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::head::RequestHead;
use super::health::{BreakerRules, HealthChange, TargetHealth};
use crate::model::{Backend, Strategy};
use crate::routing::TargetUrl;

/// One target and its load on this instance.
struct Slot {
    url: TargetUrl,
    weight: u32,
    backup: bool,
    in_flight: AtomicU32,
    /// Shared with the revisions before and after this one.
    health: Arc<TargetHealth>,
}

/// What a `hash` strategy hashes.
enum HashOn {
    ClientIp,
    Header(Box<str>),
    Cookie(Box<str>),
}

/// A set of targets taking traffic together: indexes and total weight.
struct Tier {
    members: Vec<usize>,
    weight: u64,
}

/// A route's targets and how one is chosen.
pub(crate) struct Balancer {
    slots: Vec<Slot>,
    primary: Tier,
    backup: Tier,
    strategy: Strategy,
    hash_on: HashOn,
    /// Round-robin position.
    next: AtomicU64,
    /// The passive circuit breaker, when the route has one.
    breaker: Option<BreakerRules>,
}

impl Balancer {
    /// The balancer of a (validated) backend.
    pub(crate) fn new(backend: &Backend) -> Self {
        let slots: Vec<Slot> = backend
            .targets
            .iter()
            .filter_map(|t| {
                Some(Slot {
                    url: TargetUrl::parse(&t.url).ok()?,
                    weight: t.weight,
                    backup: t.backup,
                    in_flight: AtomicU32::new(0),
                    health: Arc::default(),
                })
            })
            .collect();
        let tier = |backup: bool| {
            let members: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].backup == backup && slots[i].weight > 0)
                .collect();
            let weight = members.iter().map(|&i| u64::from(slots[i].weight)).sum();
            Tier { members, weight }
        };
        let lb = &backend.load_balancing;
        Self {
            primary: tier(false),
            backup: tier(true),
            slots,
            strategy: lb.strategy,
            hash_on: match (&lb.header, &lb.cookie) {
                (Some(h), _) => HashOn::Header(h.to_ascii_lowercase().into_boxed_str()),
                (None, Some(c)) => HashOn::Cookie(c.as_str().into()),
                (None, None) => HashOn::ClientIp,
            },
            next: AtomicU64::new(0),
            breaker: backend.circuit_breaker.as_ref().map(BreakerRules::of),
        }
    }

    /// Takes over the health of the same targets (by URL) in `previous`.
    pub(crate) fn carry_health_from(&mut self, previous: &Balancer) {
        for slot in &mut self.slots {
            if let Some(old) = previous.slots.iter().find(|o| o.url == slot.url) {
                slot.health = old.health.clone();
            }
        }
    }

    /// Each target: its URL, whether it is a backup, its weight, its health.
    pub(crate) fn targets(
        &self,
    ) -> impl Iterator<Item = (&TargetUrl, bool, u32, &Arc<TargetHealth>)> {
        self.slots
            .iter()
            .map(|s| (&s.url, s.backup, s.weight, &s.health))
    }

    /// How long an open circuit keeps a target out (ms); 0 without a breaker.
    pub(crate) fn open_ms(&self) -> u64 {
        self.breaker.map_or(0, |b| b.open_ms)
    }

    /// Counts the outcome of a request sent to target `i` (chosen at
    /// `picked_ms`) against its circuit breaker (when the route has one):
    /// the change of state, if any.
    pub(crate) fn report(
        &self,
        i: usize,
        failed: bool,
        picked_ms: u64,
        now_ms: u64,
    ) -> Option<HealthChange> {
        let rules = self.breaker.as_ref()?;
        self.slots
            .get(i)?
            .health
            .report(i, failed, rules, picked_ms, now_ms)
    }

    /// The target at `i`.
    pub(crate) fn target(&self, i: usize) -> &TargetUrl {
        &self.slots[i].url
    }

    /// Chooses a target for a request: its index, or `None` when no target
    /// takes traffic. `random` is the request's own randomness (its id's
    /// bits); `client` its address; `now_ms` tells when an open circuit
    /// may be probed.
    pub(crate) fn pick(
        &self,
        head: &impl RequestHead,
        client: Option<IpAddr>,
        random: u128,
        now_ms: u64,
    ) -> Option<usize> {
        let tier = if self.primary.weight > 0 {
            &self.primary
        } else if self.backup.weight > 0 {
            &self.backup
        } else {
            return None;
        };
        let key = match self.strategy {
            Strategy::Hash => self.key(head, client),
            _ => None,
        };
        let n = if key.is_some() {
            0
        } else {
            self.position(random)
        };
        let mut chosen = self.choose(tier, tier.weight, key.as_ref(), n, random, |_| true);
        if !self.slots[chosen].health.available() {
            // Out of service: the request goes where the healthy ones are.
            chosen = self.pick_healthy(key.as_ref(), n, random, now_ms, 0)?;
        }
        if self.strategy == Strategy::LeastRequests {
            self.slots[chosen].in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Some(chosen)
    }

    /// Another target, for a retry: a healthy one not in `tried` (a bit
    /// per target), by weight; `None` when none is left.
    pub(crate) fn pick_other(&self, tried: u64, random: u128, now_ms: u64) -> Option<usize> {
        let chosen = self.pick_healthy(None, random as u64, random, now_ms, tried)?;
        if self.strategy == Strategy::LeastRequests {
            self.slots[chosen].in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Some(chosen)
    }

    /// A request sent to target `i` is over (called by the log phase).
    pub(crate) fn finished(&self, i: usize) {
        if self.strategy != Strategy::LeastRequests {
            return;
        }
        if let Some(slot) = self.slots.get(i) {
            // Never below zero, even for a request counted by an older
            // revision's balancer.
            let _ = slot
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// The round-robin (or random) position of a request.
    fn position(&self, random: u128) -> u64 {
        match self.strategy {
            Strategy::Random | Strategy::LeastRequests => random as u64,
            Strategy::RoundRobin | Strategy::Hash => self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A member of `tier` among those `ok` admits (of total weight
    /// `weight`), by the route's strategy.
    fn choose(
        &self,
        tier: &Tier,
        weight: u64,
        key: Option<&Key<'_>>,
        n: u64,
        random: u128,
        ok: impl Fn(usize) -> bool,
    ) -> usize {
        match (self.strategy, key) {
            (Strategy::LeastRequests, _) => self.less_busy(tier, weight, random, ok),
            (Strategy::Hash, Some(key)) => rendezvous(tier, key.as_ref(), ok),
            _ => self.by_weight(tier, weight, n, ok),
        }
    }

    /// The slow path, when the chosen target is out or for a retry: the
    /// half-open probe of a circuit whose cool-down is over, else a
    /// healthy target not in `tried`; primaries first, then backups.
    fn pick_healthy(
        &self,
        key: Option<&Key<'_>>,
        n: u64,
        random: u128,
        now_ms: u64,
        tried: u64,
    ) -> Option<usize> {
        let fresh = |i: usize| i >= 64 || tried & (1 << i) == 0;
        for tier in [&self.primary, &self.backup] {
            if let Some(rules) = &self.breaker {
                let probe =
                    tier.members.iter().copied().find(|&i| {
                        fresh(i) && self.slots[i].health.try_probe(now_ms, rules.open_ms)
                    });
                if probe.is_some() {
                    return probe;
                }
            }
            let ok = |i: usize| fresh(i) && self.slots[i].health.available();
            let weight: u64 = tier
                .members
                .iter()
                .filter(|&&i| ok(i))
                .map(|&i| u64::from(self.slots[i].weight))
                .sum();
            if weight > 0 {
                return Some(self.choose(tier, weight, key, n, random, ok));
            }
        }
        None
    }

    /// The member of `tier` (among those `ok` admits, of total weight
    /// `weight`) the `n`th unit of weight falls on.
    fn by_weight(&self, tier: &Tier, weight: u64, n: u64, ok: impl Fn(usize) -> bool) -> usize {
        let mut n = n % weight;
        for &i in tier.members.iter().filter(|&&i| ok(i)) {
            let w = u64::from(self.slots[i].weight);
            if n < w {
                return i;
            }
            n -= w;
        }
        tier.members[0]
    }

    /// Of two members drawn at random by weight (among those `ok` admits),
    /// the one with fewer requests in flight.
    fn less_busy(
        &self,
        tier: &Tier,
        weight: u64,
        random: u128,
        ok: impl Fn(usize) -> bool,
    ) -> usize {
        let a = self.by_weight(tier, weight, random as u64, &ok);
        let mut b = self.by_weight(tier, weight, (random >> 64) as u64, &ok);
        if b == a {
            // Two different members when there are two: the next one.
            let at = tier.members.iter().position(|&i| i == a).unwrap_or(0);
            let len = tier.members.len();
            if let Some(next) = (1..len)
                .map(|k| tier.members[(at + k) % len])
                .find(|&i| ok(i))
            {
                b = next;
            }
        }
        let load = |i: usize| self.slots[i].in_flight.load(Ordering::Relaxed);
        if load(b) < load(a) {
            b
        } else {
            a
        }
    }

    /// The hash key of a request, if it has one.
    fn key<'h>(&self, head: &'h impl RequestHead, client: Option<IpAddr>) -> Option<Key<'h>> {
        match &self.hash_on {
            HashOn::ClientIp => client.map(|ip| match ip {
                IpAddr::V4(v4) => {
                    let mut bytes = [0u8; 16];
                    bytes[..4].copy_from_slice(&v4.octets());
                    Key::Ip(bytes, 4)
                }
                IpAddr::V6(v6) => Key::Ip(v6.octets(), 16),
            }),
            HashOn::Header(name) => head.first(name).map(Key::Bytes),
            HashOn::Cookie(name) => {
                let cookies = head.first("cookie")?;
                cookies.split(|&b| b == b';').find_map(|pair| {
                    let pair = pair.trim_ascii();
                    let (n, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
                    (n == name.as_bytes()).then(|| Key::Bytes(&v[1..]))
                })
            }
        }
    }
}

/// A hash key: bytes of the request, or an address (its bytes, and how
/// many there are).
enum Key<'h> {
    Bytes(&'h [u8]),
    Ip([u8; 16], usize),
}

impl AsRef<[u8]> for Key<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Key::Bytes(b) => b,
            Key::Ip(b, n) => &b[..*n],
        }
    }
}

/// Rendezvous hashing: the member whose (key, member) hash is highest.
/// Removing a target moves only the keys that were on it; the hash is
/// fixed (not seeded per process), so every instance agrees.
fn rendezvous(tier: &Tier, key: &[u8], ok: impl Fn(usize) -> bool) -> usize {
    let base = fnv1a(key);
    let mut best = (0u64, tier.members[0]);
    for &i in tier.members.iter().filter(|&&i| ok(i)) {
        let score = mix(base ^ mix(i as u64 + 1));
        if score > best.0 {
            best = (score, i);
        }
    }
    best.1
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64's finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(targets: serde_json::Value, lb: serde_json::Value) -> Balancer {
        let backend: Backend = serde_json::from_value(serde_json::json!({
            "targets": targets,
            "loadBalancing": lb,
        }))
        .expect("a backend");
        Balancer::new(&backend)
    }

    fn head(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).expect("a request").into_parts().0
    }

    fn counts(b: &Balancer, picks: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut c = vec![0; b.slots.len()];
        for i in picks {
            c[i] += 1;
        }
        c
    }

    #[test]
    fn round_robin_follows_the_weights_and_skips_backups_and_drained() {
        let b = balancer(
            serde_json::json!([
                { "url": "http://a" , "weight": 3 },
                { "url": "http://b" },
                { "url": "http://c", "weight": 0 },
                { "url": "http://d", "backup": true }
            ]),
            serde_json::json!({}),
        );
        let h = head(&[]);
        let c = counts(
            &b,
            (0..400).map(|n| b.pick(&h, None, n, 0).expect("a target")),
        );
        assert_eq!(c, [300, 100, 0, 0]);
    }

    #[test]
    fn backups_take_over_when_no_primary_takes_traffic() {
        let b = balancer(
            serde_json::json!([
                { "url": "http://a", "weight": 0 },
                { "url": "http://b", "backup": true }
            ]),
            serde_json::json!({ "strategy": "random" }),
        );
        assert_eq!(b.pick(&head(&[]), None, 7, 0), Some(1));
        let none = balancer(
            serde_json::json!([{ "url": "http://a", "weight": 0 }]),
            serde_json::json!({}),
        );
        assert_eq!(none.pick(&head(&[]), None, 7, 0), None);
    }

    #[test]
    fn least_requests_prefers_the_less_busy() {
        let b = balancer(
            serde_json::json!([{ "url": "http://a" }, { "url": "http://b" }, { "url": "http://c" }]),
            serde_json::json!({ "strategy": "leastRequests" }),
        );
        let h = head(&[]);
        b.slots[0].in_flight.store(50, Ordering::Relaxed);
        b.slots[1].in_flight.store(50, Ordering::Relaxed);
        // Whatever pair is drawn, the idle one wins whenever it is drawn;
        // and a busy one is never chosen over it.
        let mut to_c = 0;
        for n in 0..300u128 {
            let r = n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            let i = b.pick(&h, None, r, 0).expect("a target");
            if i == 2 {
                to_c += 1;
            }
            b.finished(i);
        }
        assert!(to_c >= 180, "the idle target took {to_c} of 300");
        // Counts never go below zero.
        for _ in 0..3 {
            b.finished(2);
        }
        assert_eq!(b.slots[2].in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn hashing_keeps_a_key_on_its_target_and_moves_few_when_one_goes() {
        let four = serde_json::json!([
            { "url": "http://a" }, { "url": "http://b" }, { "url": "http://c" }, { "url": "http://d" }
        ]);
        let b = balancer(
            four,
            serde_json::json!({ "strategy": "hash", "header": "X-User" }),
        );
        let users: Vec<String> = (0..400).map(|i| format!("user-{i}")).collect();
        let picks: Vec<usize> = users
            .iter()
            .map(|u| {
                b.pick(&head(&[("x-user", u)]), None, 0, 0)
                    .expect("a target")
            })
            .collect();
        for (u, p) in users.iter().zip(&picks) {
            assert_eq!(
                b.pick(&head(&[("x-user", u)]), None, 99, 0),
                Some(*p),
                "stable"
            );
        }
        let c = counts(&b, picks.iter().copied());
        assert!(c.iter().all(|&n| n > 60), "spread: {c:?}");
        // Target d drained: only its keys move.
        let three = balancer(
            serde_json::json!([
                { "url": "http://a" }, { "url": "http://b" }, { "url": "http://c" }, { "url": "http://d", "weight": 0 }
            ]),
            serde_json::json!({ "strategy": "hash", "header": "x-user" }),
        );
        for (u, p) in users.iter().zip(&picks) {
            let now = three
                .pick(&head(&[("x-user", u)]), None, 0, 0)
                .expect("a target");
            if *p != 3 {
                assert_eq!(now, *p, "{u} stays");
            }
        }
    }

    #[test]
    fn a_cookie_or_the_client_address_can_be_the_key() {
        let targets = serde_json::json!([{ "url": "http://a" }, { "url": "http://b" }, { "url": "http://c" }]);
        let by_cookie = balancer(
            targets.clone(),
            serde_json::json!({ "strategy": "hash", "cookie": "sid" }),
        );
        let h1 = head(&[("cookie", "theme=dark; sid=abc")]);
        let h2 = head(&[("cookie", "sid=abc")]);
        assert_eq!(
            by_cookie.pick(&h1, None, 1, 0),
            by_cookie.pick(&h2, None, 2, 0)
        );
        let by_ip = balancer(targets, serde_json::json!({ "strategy": "hash" }));
        let ip: IpAddr = "203.0.113.9".parse().expect("an address");
        assert_eq!(
            by_ip.pick(&head(&[]), Some(ip), 1, 0),
            by_ip.pick(&head(&[]), Some(ip), 2, 0)
        );
    }
}
