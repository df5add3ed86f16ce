//! Password checks that cannot be turned against the server.
//!
//! Argon2id is slow and memory-hard on purpose (about 19 MiB and tens of milliseconds per
//! hash), so an unbounded number of hashes at once is a way to exhaust the server. Every hash
//! (a login's check and a registration's hash) goes through [`Passwords`]:
//!
//! - a [`HashPool`] of a few threads (one per core, at most four), each holding at most one
//!   hash's memory, fed by a bounded queue in two tiers: addresses with no recent failure
//!   first, the others after them. A full tier answers [`Refusal::Busy`] at once (the
//!   retryable `busy` code, which the terminal client backs off on);
//! - per address (an IPv4 address, an IPv6 /64): at most [`IN_FLIGHT_PER_ADDRESS`] attempts
//!   at once (more: `busy`), a delay before each attempt that grows with the address's recent
//!   failures (an address with no failures is never delayed; never per nick, so nobody can
//!   lock a nick's owner out), forgotten [`FAILURE_MEMORY`] after the last failure; and at
//!   most [`REGISTRATIONS_PER_ADDRESS`] new registrations per [`REGISTRATION_WINDOW`]
//!   (more: `rate_limited`).
//!
//! The address table holds only addresses with an attempt under way, recent hashes, recent
//! failures or recent registrations, and at most [`MAX_ADDRESSES`] of them. When it is full
//! (at most once a second) what has expired is dropped, then the addresses that only remember
//! recent hashes; an address that still finds no room is served untracked (it has no known
//! failures), so nobody can shut clean addresses out by filling the table.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::engine::lock;

/// Attempts one address may have under way (waiting out its delay, queued or hashing).
pub const IN_FLIGHT_PER_ADDRESS: u32 = 2;
/// Jobs each tier of the pool's queue holds beyond those being hashed.
pub const QUEUE_PER_TIER: usize = 16;
/// The delay after an address's first failure; it doubles with each further one.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// How long an address's failures are remembered after its last one.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// New registrations one address may make per [`REGISTRATION_WINDOW`].
pub const REGISTRATIONS_PER_ADDRESS: usize = 10;
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(60 * 60);
/// The most addresses the table tracks at once.
pub const MAX_ADDRESSES: usize = 100_000;
/// Hashes one address may have made (any outcome, logins included) per [`HASH_WINDOW`]; more:
/// `busy`. A few addresses logging in over and over cannot keep the pool to themselves.
pub const HASHES_PER_ADDRESS: usize = 30;
pub const HASH_WINDOW: Duration = Duration::from_secs(60);
/// How often a full table may be swept for expired entries (a sweep walks all of it).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Why an attempt was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many hashes waiting (server-wide, or from this address): retry later.
    Busy,
    /// This address registered too many nicks lately.
    Registrations,
}

/// The address key: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6 by its /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// The delay before an attempt from an address with `failures` recent failures.
pub fn delay_for(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[derive(Default)]
struct AddressState {
    in_flight: u32,
    /// Of `in_flight`, the registrations (counted against the allowance while under way).
    registering: u32,
    /// When this address's recent hashes started (the last [`HASH_WINDOW`]).
    hashes: VecDeque<Instant>,
    failures: u32,
    last_failure: Option<Instant>,
    registrations: VecDeque<Instant>,
}

impl AddressState {
    /// Forgets what is older than it needs to remember.
    fn expire(&mut self, now: Instant) {
        if self
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) >= FAILURE_MEMORY)
        {
            self.failures = 0;
            self.last_failure = None;
        }
        while self
            .registrations
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= REGISTRATION_WINDOW)
        {
            self.registrations.pop_front();
        }
        while self
            .hashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HASH_WINDOW)
        {
            self.hashes.pop_front();
        }
    }

    /// Nothing but the times of recent hashes (no attempt under way, no failure, no
    /// registration).
    fn only_hashes(&self) -> bool {
        self.in_flight == 0
            && self.registering == 0
            && self.failures == 0
            && self.registrations.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.in_flight == 0
            && self.failures == 0
            && self.registrations.is_empty()
            && self.hashes.is_empty()
    }
}

/// The guarded password checks. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Passwords {
    pool: HashPool,
    addresses: Arc<Mutex<Addresses>>,
}

#[derive(Default)]
struct Addresses {
    map: HashMap<IpAddr, AddressState>,
    last_sweep: Option<Instant>,
}

/// An attempt under way for an address; dropping it ends the attempt.
struct Attempt {
    addresses: Arc<Mutex<Addresses>>,
    key: IpAddr,
    registering: bool,
}

/// A registration's hash, with its attempt still counted; [`Registration::done`] counts the
/// registration once the identity is stored (dropped instead: it never happened).
pub struct Registration {
    attempt: Attempt,
    pub hash: String,
}

impl Registration {
    pub fn done(self) {
        let mut addresses = lock(&self.attempt.addresses);
        if let Some(state) = addresses.map.get_mut(&self.attempt.key) {
            state.registrations.push_back(Instant::now());
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut addresses = lock(&self.addresses);
        let map = &mut addresses.map;
        if let Some(state) = map.get_mut(&self.key) {
            state.in_flight = state.in_flight.saturating_sub(1);
            if self.registering {
                state.registering = state.registering.saturating_sub(1);
            }
            if state.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

impl Passwords {
    /// A pool of `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> Passwords {
        Passwords {
            pool: HashPool::new(threads.max(1), QUEUE_PER_TIER),
            addresses: Arc::default(),
        }
    }

    /// One hashing thread per core, at most four.
    pub fn sized_to_cores() -> Passwords {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords::new(cores.min(4))
    }

    /// Starts an attempt: counts it, and returns its delay and whether it goes in the first
    /// tier.
    fn begin(&self, ip: IpAddr, registering: bool) -> Result<(Attempt, Duration, bool), Refusal> {
        let key = address_key(ip);
        let now = Instant::now();
        let mut addresses = lock(&self.addresses);
        let Addresses { map, last_sweep } = &mut *addresses;
        if !map.contains_key(&key) && map.len() >= MAX_ADDRESSES {
            // At most one sweep a second: each walks the whole table.
            if last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
                *last_sweep = Some(now);
                map.retain(|_, s| {
                    s.expire(now);
                    !s.is_empty()
                });
                if map.len() >= MAX_ADDRESSES {
                    // Still full: forget the addresses that only remember recent hashes
                    // (cheap to make by the thousand: an attempt refused `busy` is one),
                    // keeping failures, registrations and attempts under way.
                    map.retain(|_, s| !s.only_hashes());
                }
            }
            if map.len() >= MAX_ADDRESSES {
                // Full of failures and registrations: an address the table does not know has
                // no failures, so it goes untracked in the first tier, never refused for
                // the table's sake (the pool's queues still bound the work).
                let attempt = Attempt {
                    addresses: self.addresses.clone(),
                    key,
                    registering,
                };
                return Ok((attempt, Duration::ZERO, true));
            }
        }
        let state = map.entry(key).or_default();
        state.expire(now);
        if state.in_flight >= IN_FLIGHT_PER_ADDRESS || state.hashes.len() >= HASHES_PER_ADDRESS {
            return Err(Refusal::Busy);
        }
        if registering
            && state.registrations.len() + state.registering as usize >= REGISTRATIONS_PER_ADDRESS
        {
            return Err(Refusal::Registrations);
        }
        state.in_flight += 1;
        state.registering += u32::from(registering);
        state.hashes.push_back(now);
        // The delay runs from the last failure, so a patient client is not delayed twice.
        let delay = state.last_failure.map_or(Duration::ZERO, |t| {
            delay_for(state.failures).saturating_sub(now.saturating_duration_since(t))
        });
        let first_tier = state.failures == 0;
        let attempt = Attempt {
            addresses: self.addresses.clone(),
            key,
            registering,
        };
        Ok((attempt, delay, first_tier))
    }

    /// Counts a wrong password against the attempt's address.
    fn failed(&self, attempt: &Attempt) {
        let mut addresses = lock(&self.addresses);
        if let Some(state) = addresses.map.get_mut(&attempt.key) {
            state.failures = state.failures.saturating_add(1);
            state.last_failure = Some(Instant::now());
        }
    }

    /// Checks `password` against a stored Argon2 hash. `Ok(false)` is a wrong password (and
    /// counts as a failure of the address).
    pub async fn verify(
        &self,
        ip: IpAddr,
        password: String,
        hash: String,
    ) -> Result<bool, Refusal> {
        let (attempt, delay, first) = self.begin(ip, false)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let ok = self
            .pool
            .run(first, move || argon2_verify(&password, &hash))
            .await?;
        if !ok {
            self.failed(&attempt);
        }
        Ok(ok)
    }

    /// Hashes a new password for a registration from `ip` (Argon2id, random salt). The
    /// registration counts against the address's allowance while under way, and for good
    /// once [`Registration::done`] says the identity was stored.
    pub async fn hash_new(&self, ip: IpAddr, password: String) -> Result<Registration, Refusal> {
        let (attempt, delay, first) = self.begin(ip, true)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let hashed = self.pool.run(first, move || argon2_hash(&password)).await?;
        // Hashing with a valid salt does not fail; if it ever did, the server is not able
        // to take the registration now.
        let hash = hashed.ok_or(Refusal::Busy)?;
        Ok(Registration { attempt, hash })
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn tracked_addresses(&self) -> usize {
        lock(&self.addresses).map.len()
    }
}

thread_local! {
    /// The Argon2 working memory of a pool thread, allocated on its first hash and kept:
    /// a hash's 19 MiB allocated and freed each time stays resident in the allocator's
    /// per-thread arenas (several blocks per arena), so the pool would not bound memory.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest Argon2 memory cost a stored hash may ask for, in KiB (ours use the default,
/// 19 MiB).
const MAX_M_COST: u32 = 64 * 1024;

/// Argon2 of `password` into `out` with this thread's reusable memory.
fn argon2_into(
    algorithm: argon2::Algorithm,
    version: argon2::Version,
    params: argon2::Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    if params.m_cost() > MAX_M_COST {
        return Err(argon2::Error::MemoryTooMuch);
    }
    let blocks = params.block_count();
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        argon2::Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut memory[..blocks],
        )
    })
}

/// A new Argon2id PHC string for `password`, with a random salt and the default cost.
fn argon2_hash(password: &str) -> Option<String> {
    use argon2::password_hash::{Output, PasswordHash, SaltString};
    use argon2::{Algorithm, Params, Version};
    let raw_salt = rand::random::<[u8; 16]>();
    let salt = SaltString::encode_b64(&raw_salt).ok()?;
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password.as_bytes(),
        &raw_salt,
        &mut out,
    )
    .ok()?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().ok()?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).ok()?),
    };
    Some(phc.to_string())
}

/// Whether `password` matches a stored Argon2 PHC string (constant-time comparison).
fn argon2_verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{Output, PasswordHash};
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(
        algorithm,
        version,
        params,
        password.as_bytes(),
        salt,
        &mut out,
    )
    .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run hashing jobs from a bounded two-tier queue.
#[derive(Clone)]
pub struct HashPool {
    shared: Arc<PoolShared>,
    /// Held by every clone; when the last one goes, the threads are told to stop.
    _owner: Arc<PoolOwner>,
}

struct PoolShared {
    /// `[first tier, second tier]`.
    queues: Mutex<PoolQueues>,
    ready: Condvar,
    per_tier: usize,
}

#[derive(Default)]
struct PoolQueues {
    tiers: [VecDeque<Job>; 2],
    closed: bool,
}

struct PoolOwner(Arc<PoolShared>);

impl Drop for PoolOwner {
    fn drop(&mut self) {
        lock(&self.0.queues).closed = true;
        self.0.ready.notify_all();
    }
}

impl HashPool {
    pub fn new(threads: usize, per_tier: usize) -> HashPool {
        let shared = Arc::new(PoolShared {
            queues: Mutex::default(),
            ready: Condvar::new(),
            per_tier,
        });
        for i in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("chat-hash-{i}"))
                .spawn(move || worker(&shared));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool {
            _owner: Arc::new(PoolOwner(shared.clone())),
            shared,
        }
    }

    /// Runs `f` on a pool thread; `Busy` when its tier of the queue is full.
    pub async fn run<T, F>(&self, first_tier: bool, f: F) -> Result<T, Refusal>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut queues = lock(&self.shared.queues);
            let tier = &mut queues.tiers[usize::from(!first_tier)];
            if tier.len() >= self.shared.per_tier {
                return Err(Refusal::Busy);
            }
            tier.push_back(Box::new(move || {
                let _ = tx.send(f());
            }));
        }
        self.shared.ready.notify_one();
        // A job dropped unrun (the pool closed) reads as busy.
        rx.await.map_err(|_| Refusal::Busy)
    }
}

fn worker(shared: &PoolShared) {
    loop {
        let job = {
            let mut queues = lock(&shared.queues);
            loop {
                if queues.closed {
                    return;
                }
                let next = match queues.tiers[0].pop_front() {
                    Some(job) => Some(job),
                    None => queues.tiers[1].pop_front(),
                };
                if let Some(job) = next {
                    break job;
                }
                queues = shared.ready.wait(queues).unwrap_or_else(|e| e.into_inner());
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_key(mapped), IpAddr::from([10, 1, 2, 3]));
    }

    #[test]
    fn our_hashes_are_standard_argon2id_phc_strings() {
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let ours = argon2_hash("s3cret").expect("hash");
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(argon2_verify("s3cret", &ours));
        assert!(!argon2_verify("s3cret!", &ours));
        assert!(!argon2_verify("s3cret", "not a hash"));
        // The argon2 crate's own verifier accepts ours, and ours accepts its hashes (those
        // stored by earlier versions).
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(
            argon2::Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        let theirs = argon2::Argon2::default()
            .hash_password(b"older", &salt)
            .expect("hash")
            .to_string();
        assert!(argon2_verify("older", &theirs));
        assert!(!argon2_verify("newer", &theirs));
    }

    #[test]
    fn delays_grow_from_nothing_to_a_cap() {
        assert_eq!(delay_for(0), Duration::ZERO);
        assert_eq!(delay_for(1), FIRST_DELAY);
        assert_eq!(delay_for(2), FIRST_DELAY * 2);
        assert_eq!(delay_for(40), MAX_DELAY);
    }

    #[tokio::test]
    async fn an_address_has_few_attempts_at_once_and_others_are_unaffected() {
        let p = Passwords::new(1);
        let ip: IpAddr = [127, 0, 0, 9].into();
        let (a1, _, _) = p.begin(ip, false).expect("first");
        let (_a2, _, _) = p.begin(ip, false).expect("second");
        assert_eq!(p.begin(ip, false).err(), Some(Refusal::Busy));
        assert!(p.begin([127, 0, 0, 10].into(), false).is_ok());
        drop(a1);
        assert!(p.begin(ip, false).is_ok());
        drop(_a2);
    }

    #[tokio::test]
    async fn an_address_is_forgotten_once_its_attempts_end_and_its_hashes_age() {
        let p = Passwords::new(1);
        let attempts: Vec<_> = (1..=50u8)
            .map(|i| p.begin([127, 0, 1, i].into(), false).expect("attempt"))
            .collect();
        assert_eq!(p.tracked_addresses(), 50);
        drop(attempts);
        // Their hashes are remembered for the per-address budget, then forgotten.
        assert_eq!(p.tracked_addresses(), 50);
        let later = Instant::now() + HASH_WINDOW;
        for state in lock(&p.addresses).map.values_mut() {
            state.expire(later);
            assert!(state.is_empty());
        }
    }

    /// An IPv6 address in its own /64.
    fn net64(i: u64) -> IpAddr {
        IpAddr::V6((u128::from(0x2001_0db8_u32) << 96 | u128::from(i) << 64 | 1).into())
    }

    #[tokio::test]
    async fn a_table_full_of_attempts_makes_room_and_a_full_one_shuts_no_clean_address_out() {
        let p = Passwords::new(1);
        // Filled by attempts that left only their hash times (each refused or done).
        for i in 0..MAX_ADDRESSES as u64 {
            drop(p.begin(net64(i), false).expect("attempt"));
        }
        assert_eq!(p.tracked_addresses(), MAX_ADDRESSES);
        let owner: IpAddr = [127, 0, 0, 2].into();
        let (a, delay, first) = p.begin(owner, false).expect("a clean address is served");
        assert_eq!((delay, first), (Duration::ZERO, true));
        assert_eq!(
            p.tracked_addresses(),
            1,
            "the attempts-only entries were dropped"
        );
        drop(a);
        // Filled with failures (kept: they delay their addresses), the table takes no more,
        // and a clean address is still served, untracked, undelayed, in the first tier.
        {
            let mut addresses = lock(&p.addresses);
            let now = Instant::now();
            for i in 0..MAX_ADDRESSES as u64 {
                let state = addresses.map.entry(address_key(net64(i))).or_default();
                state.failures = 3;
                state.last_failure = Some(now);
            }
            addresses.last_sweep = None;
        }
        let other: IpAddr = [127, 0, 0, 3].into();
        for _ in 0..3 {
            let (a, delay, first) = p.begin(other, false).expect("served untracked");
            assert_eq!((delay, first), (Duration::ZERO, true));
            p.failed(&a);
        }
        assert!(p.tracked_addresses() <= MAX_ADDRESSES + 1);
        let (_a, delay, first) = p.begin(net64(7), false).expect("a failing address");
        assert!(delay > Duration::ZERO && !first, "{delay:?} {first}");
    }

    #[tokio::test]
    async fn failures_delay_only_their_address_and_send_it_to_the_second_tier() {
        let p = Passwords::new(1);
        let ip: IpAddr = [127, 0, 0, 9].into();
        let (a, delay, first) = p.begin(ip, false).expect("attempt");
        assert_eq!((delay, first), (Duration::ZERO, true));
        p.failed(&a);
        drop(a);
        let (_a, delay, first) = p.begin(ip, false).expect("attempt");
        assert!(delay > Duration::ZERO && delay <= FIRST_DELAY, "{delay:?}");
        assert!(!first);
        let (_b, delay, first) = p.begin([127, 0, 0, 2].into(), false).expect("clean");
        assert_eq!((delay, first), (Duration::ZERO, true));
    }

    #[tokio::test]
    async fn registrations_per_address_are_bounded() {
        let p = Passwords::new(1);
        let ip: IpAddr = [127, 0, 0, 9].into();
        for _ in 0..REGISTRATIONS_PER_ADDRESS - 1 {
            p.hash_new(ip, "pw".into()).await.expect("hash").done();
        }
        // The last one allowed, while under way, already counts.
        let (last, _, _) = p.begin(ip, true).expect("the tenth");
        assert_eq!(p.begin(ip, true).err(), Some(Refusal::Registrations));
        drop(last);
        // A registration that never got stored does not count.
        drop(p.hash_new(ip, "pw".into()).await.expect("hash"));
        p.hash_new(ip, "pw".into()).await.expect("hash").done();
        assert_eq!(p.begin(ip, true).err(), Some(Refusal::Registrations));
        assert!(p.begin(ip, false).is_ok(), "logins are not registrations");
        assert!(p.begin([127, 0, 0, 2].into(), true).is_ok());
    }

    #[tokio::test]
    async fn hashes_per_address_are_bounded_whatever_their_outcome() {
        let p = Passwords::new(1);
        let ip: IpAddr = [127, 0, 0, 9].into();
        for _ in 0..HASHES_PER_ADDRESS {
            drop(p.begin(ip, false).expect("within the budget"));
        }
        assert_eq!(p.begin(ip, false).err(), Some(Refusal::Busy));
        assert!(p.begin([127, 0, 0, 10].into(), false).is_ok());
    }

    #[tokio::test]
    async fn a_full_tier_is_busy_and_the_first_tier_goes_first() {
        let pool = HashPool::new(1, 2);
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        // Occupy the one thread until told.
        let blocker = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(true, move || hold_rx.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waits = Vec::new();
        for (tier, name) in [(false, "second-a"), (false, "second-b"), (true, "first")] {
            let (pool, order) = (pool.clone(), order.clone());
            waits.push(tokio::spawn(async move {
                pool.run(tier, move || lock(&order).push(name)).await
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The second tier holds two: a third is refused at once.
        assert_eq!(pool.run(false, || ()).await, Err(Refusal::Busy));
        hold_tx.send(()).expect("release");
        assert_eq!(blocker.await.expect("blocker"), Ok(true));
        for w in waits {
            assert_eq!(w.await.expect("job"), Ok(()));
        }
        assert_eq!(*lock(&order), vec!["first", "second-a", "second-b"]);
    }
}
