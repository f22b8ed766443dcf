//! Push encryption work done ahead, while the machine is idle.
//!
//! Each Web Push message takes a fresh P-256 key pair and a key agreement (ECDH) between
//! it and the phone's key (RFC 8291 §3.1). In a burst of escalations the agreement alone
//! was 30% of the service's CPU: about 50 µs a message on this machine kind, with nothing
//! in it that depends on the message. Two stocks are kept, by a thread of the lowest
//! priority (Linux's `SCHED_IDLE`: it runs when no other thread wants the CPU):
//!
//! - **key pairs**, for any message, up to the stock's size;
//! - **agreements foreseen**: for the phones that the next tick's escalations will reach
//!   if nobody acknowledges first ([`KeyStock::foresee`]), a fresh key pair each and its
//!   agreement with that phone's key, as many as the pushes foreseen.
//!
//! Either is used for one message only and then dropped: a message made with work done
//! ahead is the same as one made at once, with its own key pair and its own salt. A
//! message with nothing in stock makes its own. The thread stops when the stock is dropped.
use ring::agreement::{
    agree_ephemeral, EphemeralPrivateKey, PublicKey, UnparsedPublicKey, ECDH_P256,
};
use ring::rand::SystemRandom;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// An ephemeral key pair, used for one message.
pub(super) type KeyPair = (EphemeralPrivateKey, PublicKey);

/// A key pair's public half and its agreement with one phone's key; the private half is
/// gone once the agreement is made.
pub(super) struct Agreed {
    pub as_public: Vec<u8>,
    pub secret: [u8; 32],
}

/// Makes a fresh ephemeral key pair; `None` if the system's random number generator fails.
pub(super) fn key_pair(rng: &SystemRandom) -> Option<KeyPair> {
    let private = EphemeralPrivateKey::generate(&ECDH_P256, rng).ok()?;
    let public = private.compute_public_key().ok()?;
    Some((private, public))
}

/// A fresh key pair's agreement with `peer` (an uncompressed P-256 point): `None` if the
/// point is not on the curve or no key pair could be made.
fn agree(rng: &SystemRandom, peer: &[u8]) -> Option<Agreed> {
    let (private, public) = key_pair(rng)?;
    agree_ephemeral(private, &UnparsedPublicKey::new(&ECDH_P256, peer), |s| {
        s.try_into().ok().map(|secret| Agreed {
            as_public: public.as_ref().to_vec(),
            secret,
        })
    })
    .ok()
    .flatten()
}

pub struct KeyStock {
    shared: Arc<Stocked>,
}

struct Stocked {
    held: Mutex<Held>,
    /// How many key pairs the stock holds when full, and the most agreements it holds.
    size: usize,
    wake: Condvar,
    closed: AtomicBool,
}

#[derive(Default)]
struct Held {
    pairs: Vec<KeyPair>,
    /// Agreements made, by the phone's key (65 bytes).
    agreed: HashMap<Vec<u8>, Vec<Agreed>>,
    /// Agreements foreseen and still to be used, by the phone's key.
    wanted: HashMap<Vec<u8>, usize>,
}

impl Held {
    /// A phone foreseen whose agreements are not all made, and how many it lacks.
    fn lacking(&self) -> Option<(Vec<u8>, usize)> {
        self.wanted.iter().find_map(|(peer, &n)| {
            let made = self.agreed.get(peer).map_or(0, Vec::len);
            (made < n).then(|| (peer.clone(), n - made))
        })
    }
}

/// Key pairs or agreements made between two looks at the stock.
const MADE_AT_ONCE: usize = 64;

impl KeyStock {
    /// A stock of `size` key pairs, filled from now on, that holds up to `size` agreements
    /// foreseen besides. `size` 0 makes none (and no thread).
    pub fn new(size: usize) -> KeyStock {
        let shared = Arc::new(Stocked {
            held: Mutex::new(Held::default()),
            size,
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        if size > 0 {
            let filler = shared.clone();
            let started = std::thread::Builder::new()
                .name("push-keys".into())
                .spawn(move || fill(&filler));
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start the thread that makes push keys ahead; each push makes its own");
            }
        }
        KeyStock { shared }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.shared.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pair made ahead, if the stock has one.
    pub(super) fn take(&self) -> Option<KeyPair> {
        let mut held = self.held();
        let pair = held.pairs.pop();
        if held.pairs.len().is_multiple_of(MADE_AT_ONCE) {
            self.shared.wake.notify_one();
        }
        pair
    }

    /// An agreement made ahead with the phone whose key is `peer`, if the stock has one.
    pub(super) fn take_agreed(&self, peer: &[u8]) -> Option<Agreed> {
        let mut held = self.held();
        let agreed = held.agreed.get_mut(peer)?.pop()?;
        if let Some(n) = held.wanted.get_mut(peer) {
            *n = n.saturating_sub(1);
        }
        Some(agreed)
    }

    /// The pushes the next tick will send if nobody acknowledges first, as how many to
    /// each phone's key (65 bytes): their agreements are made from now on, while the
    /// machine is idle, up to the stock's size in all. Replaces what was foreseen before:
    /// agreements made for a phone no longer foreseen, or beyond what it now is, are
    /// dropped.
    pub fn foresee(&self, pushes: HashMap<Vec<u8>, usize>) {
        let mut room = self.shared.size;
        let mut wanted = HashMap::with_capacity(pushes.len());
        for (peer, n) in pushes {
            let n = n.min(room);
            if n > 0 {
                room -= n;
                wanted.insert(peer, n);
            }
        }
        let mut held = self.held();
        held.agreed.retain(|peer, made| match wanted.get(peer) {
            Some(&n) => {
                made.truncate(n);
                true
            }
            None => false,
        });
        held.wanted = wanted;
        self.shared.wake.notify_one();
    }

    /// How many pushes are foreseen, and how many of their agreements are made.
    pub fn foreseen(&self) -> (usize, usize) {
        let held = self.held();
        (
            held.wanted.values().sum(),
            held.agreed.values().map(Vec::len).sum(),
        )
    }

    /// How many key pairs are in stock now.
    pub fn len(&self) -> usize {
        self.held().pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyStock {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
    }
}

/// What the stock's thread makes next.
enum Next {
    Agreements(Vec<u8>, usize),
    Pairs(usize),
}

/// The stock's thread: makes the agreements foreseen first, then tops up the key pairs, a
/// few at a time, until the stock is dropped.
fn fill(stock: &Stocked) {
    lowest_priority();
    let rng = SystemRandom::new();
    while !stock.closed.load(Ordering::Relaxed) {
        let next = {
            let held = stock.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.lacking() {
                Some((peer, n)) => Next::Agreements(peer, n.min(MADE_AT_ONCE)),
                None if held.pairs.len() < stock.size => {
                    Next::Pairs((stock.size - held.pairs.len()).min(MADE_AT_ONCE))
                }
                None => {
                    // Woken by a take or a forecast, or now and then to see whether the
                    // stock was dropped.
                    let _ = stock
                        .wake
                        .wait_timeout(held, std::time::Duration::from_secs(1));
                    continue;
                }
            }
        };
        match next {
            Next::Agreements(peer, n) => {
                let made: Vec<Agreed> = (0..n).map_while(|_| agree(&rng, &peer)).collect();
                let mut held = stock.held.lock().unwrap_or_else(|e| e.into_inner());
                if made.is_empty() {
                    // Not a P-256 point: its pushes fail anyway, each when it is sent.
                    held.wanted.remove(&peer);
                    continue;
                }
                // Only while still foreseen: a new forecast may have come meanwhile.
                if let Some(&n) = held.wanted.get(&peer) {
                    let have = held.agreed.entry(peer).or_default();
                    have.extend(made);
                    have.truncate(n);
                }
            }
            Next::Pairs(n) => {
                let made: Vec<KeyPair> = (0..n).filter_map(|_| key_pair(&rng)).collect();
                if made.is_empty() {
                    tracing::warn!(
                        "the system random number generator failed; push keys are made as needed"
                    );
                    return;
                }
                stock
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pairs
                    .extend(made);
            }
        }
    }
}

/// Puts the calling thread below every other: on Linux `SCHED_IDLE`, or else the lowest
/// nice value. Both apply to this thread only.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread (0), with a valid parameter.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ece::encrypt_with;
    use super::*;

    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// A phone's key pair and auth secret, as a browser makes them.
    fn new_phone() -> (::ece::crypto::EcKeyComponents, Vec<u8>) {
        let (keys, auth) = ::ece::generate_keypair_and_auth_secret().unwrap();
        (keys.raw_components().unwrap(), auth.to_vec())
    }

    /// The sender's public key a message was encrypted with: its header's key id.
    fn senders_key(body: &[u8]) -> Vec<u8> {
        body[21..86].to_vec()
    }

    #[test]
    fn foreseen_agreements_are_made_ahead_used_once_each_and_decrypt() {
        let stock = KeyStock::new(8);
        let (phone, auth) = new_phone();
        let (other, other_auth) = new_phone();
        stock.foresee(HashMap::from([(phone.public_key().to_vec(), 3)]));
        until("three agreements made", || stock.foreseen() == (3, 3));
        let made: Vec<Vec<u8>> = stock.held().agreed[phone.public_key()]
            .iter()
            .map(|a| a.as_public.clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        for i in 0..5 {
            let message = format!("message {i}");
            let body =
                encrypt_with(Some(&stock), phone.public_key(), &auth, message.as_bytes()).unwrap();
            assert_eq!(
                ::ece::decrypt(&phone, &auth, &body).unwrap(),
                message.as_bytes()
            );
            let key = senders_key(&body);
            // The first three with the agreements made ahead, then with pairs.
            assert_eq!(made.contains(&key), i < 3, "message {i}");
            assert!(seen.insert(key), "a key was used twice");
            assert_eq!(stock.foreseen(), (2 - i.min(2), 2 - i.min(2)));
        }
        // Another phone's messages never take this one's agreements.
        stock.foresee(HashMap::from([(phone.public_key().to_vec(), 1)]));
        until("one agreement made", || stock.foreseen() == (1, 1));
        let body = encrypt_with(Some(&stock), other.public_key(), &other_auth, b"x").unwrap();
        assert_eq!(::ece::decrypt(&other, &other_auth, &body).unwrap(), b"x");
        assert_eq!(stock.foreseen(), (1, 1));
    }

    #[test]
    fn a_forecast_is_held_to_the_stock_size_and_replaces_the_last() {
        let stock = KeyStock::new(8);
        let (a, b) = (new_phone().0, new_phone().0);
        let (a, b) = (a.public_key().to_vec(), b.public_key().to_vec());
        stock.foresee(HashMap::from([(a.clone(), 6), (b.clone(), 6)]));
        until("the stock's size made", || stock.foreseen() == (8, 8));
        // The next forecast drops what is no longer foreseen, or beyond it.
        stock.foresee(HashMap::from([(b.clone(), 1)]));
        assert_eq!(stock.foreseen(), (1, 1));
        assert!(!stock.held().agreed.contains_key(&a));
        // A key that is not a point on the curve is given up, not retried for ever.
        let mut off_curve = a.clone();
        off_curve[64] ^= 1;
        stock.foresee(HashMap::from([(off_curve, 2), (b, 1)]));
        until("the bad key given up", || stock.foreseen() == (1, 1));
    }
}
