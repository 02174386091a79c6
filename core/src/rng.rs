//! Burn's random generator, shared safely between threads.
//!
//! Burn's CPU backend draws every random tensor — every freshly initialised weight — from one
//! process-wide generator. A network built right after `device.seed(s)` gets seed `s`'s
//! weights only if no other thread draws in between: a run started while the app loads another
//! run's model (whose fresh weights are drawn and then replaced), or two experiments in the
//! threads of one test process, would otherwise start from weights that depend on timing.
//! Seeding and building a network hold [`burn_rng`] (the stage runner, `MultimodalNet::new`,
//! `EsaNet::new`).
//!
//! That covers the draws only partly: Burn initialises a parameter lazily, at its first use, so
//! a training run draws most of its weights at its first forward pass, after the guard is gone.
//! Drawing them inside the guard would change their order (module order instead of the order
//! of first use) and with it every documented result, so it is not done; instead, code that
//! runs two trainings at once in one process holds the guard for each whole training (the
//! integration tests do, test by test). The app and the CLI train one run at a time.

use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::ThreadId;

/// The thread holding the generator and how many guards it holds (the lock is re-entrant: a
/// seeded build may call code that takes it again).
static OWNER: Mutex<Option<(ThreadId, usize)>> = Mutex::new(None);
/// Signalled when the generator is released.
static RELEASED: Condvar = Condvar::new();

/// Holds Burn's random generator for this thread until dropped.
#[must_use = "the generator is released when the guard is dropped"]
pub struct BurnRngGuard {
    _private: (),
}

/// Waits until no other thread holds Burn's random generator and holds it for this thread
/// (re-entrant: a thread that holds it gets another guard at once).
pub fn burn_rng() -> BurnRngGuard {
    let me = std::thread::current().id();
    let mut owner = OWNER.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        match owner.as_mut() {
            None => {
                *owner = Some((me, 1));
                break;
            }
            Some((thread, depth)) if *thread == me => {
                *depth += 1;
                break;
            }
            Some(_) => {
                owner = RELEASED.wait(owner).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
    BurnRngGuard { _private: () }
}

impl Drop for BurnRngGuard {
    fn drop(&mut self) {
        let mut owner = OWNER.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, depth)) = owner.as_mut() {
            *depth -= 1;
            if *depth == 0 {
                *owner = None;
                RELEASED.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_thread_at_a_time_and_re_entrant() {
        static INSIDE: AtomicUsize = AtomicUsize::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..200 {
                        let _outer = burn_rng();
                        let _inner = burn_rng();
                        assert_eq!(INSIDE.fetch_add(1, Ordering::SeqCst), 0);
                        std::hint::spin_loop();
                        INSIDE.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(OWNER.lock().unwrap().is_none());
    }
}
