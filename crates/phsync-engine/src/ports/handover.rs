//! A producer on a thread of its own, its items consumed on the caller's thread, one at a
//! time: replication runs inside an async runtime, while what it hands over is written to a
//! tenant whose blocking clients (PostgreSQL's, HTTPS) cannot run inside one. The producer
//! works one item ahead: the DC serves the next batch while the last one is delivered.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::sync_channel;

/// Why an item was not taken: the consumer refused it, or is gone.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// The consumer's answer.
    By(E),
    /// The consumer ended (it panicked): the producer must stop.
    Gone,
}

/// Runs `produce` on a thread of its own, and `consume` on this one for each item it hands
/// over. The producer works one item ahead: a hand-over waits for the answer to the item
/// before, returns it (a refusal: the producer stops, this item is not consumed), and hands
/// this item over; so at most one item is consumed while the next is produced. The answer
/// to the last item is the consumer's own to keep. Returns the producer's result once it
/// ends. A panic in `consume` ends the hand-over (the producer's next hand-over is
/// [`Refused::Gone`]), and goes on once the producer has ended: it never leaves the
/// producer waiting for an answer.
pub fn hand_over<T, E, R>(
    produce: impl FnOnce(&mut dyn FnMut(T) -> Result<(), Refused<E>>) -> R + Send,
    consume: &mut dyn FnMut(T) -> Result<(), E>,
) -> std::thread::Result<R>
where
    T: Send,
    E: Send,
    R: Send,
{
    std::thread::scope(|s| {
        // An item is handed over only when the consumer takes it (a rendezvous); its answer
        // waits in the channel until the producer has the next item ready.
        let (items, received) = sync_channel::<T>(0);
        let (answer, answered) = sync_channel::<Result<(), E>>(1);
        let producer = s.spawn(move || {
            let mut outstanding = false;
            produce(&mut |item| {
                if outstanding {
                    match answered.recv() {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(Refused::By(e)),
                        Err(_) => return Err(Refused::Gone),
                    }
                }
                items.send(item).map_err(|_| Refused::Gone)?;
                outstanding = true;
                Ok(())
            })
        });
        let consumed = catch_unwind(AssertUnwindSafe(|| {
            // Until the producer ends (and drops its sender).
            while let Ok(item) = received.recv() {
                if answer.send(consume(item)).is_err() {
                    break;
                }
            }
        }));
        // Both ends close before the join: a producer waiting on either sees `Gone`.
        drop(received);
        drop(answer);
        let produced = producer.join();
        if let Err(panic) = consumed {
            resume_unwind(panic);
        }
        produced
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_consumed_in_order_on_the_callers_thread_one_at_a_time() {
        let caller = std::thread::current().id();
        let mut seen = Vec::new();
        let produced = hand_over(
            |hand: &mut dyn FnMut(u32) -> Result<(), Refused<()>>| {
                let producer = std::thread::current().id();
                for i in 0..5 {
                    hand(i).unwrap();
                }
                producer
            },
            &mut |i| {
                assert_eq!(std::thread::current().id(), caller);
                seen.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert_ne!(produced, caller, "the producer runs on a thread of its own");
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_consumer_runs_outside_the_producers_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut in_a_runtime = Vec::new();
        hand_over(
            |hand: &mut dyn FnMut(()) -> Result<(), Refused<()>>| {
                rt.block_on(async {
                    hand(()).unwrap();
                    hand(()).unwrap();
                })
            },
            &mut |()| {
                in_a_runtime.push(tokio::runtime::Handle::try_current().is_ok());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(in_a_runtime, [false, false]);
    }

    #[test]
    fn a_refusal_reaches_the_producer_with_the_next_item_which_is_not_consumed() {
        let mut consumed = Vec::new();
        let answers = hand_over(
            |hand: &mut dyn FnMut(u32) -> Result<(), Refused<&'static str>>| {
                [hand(1), hand(2), hand(3)]
            },
            &mut |i| {
                consumed.push(i);
                if i == 2 {
                    Err("full")
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert_eq!(answers, [Ok(()), Ok(()), Err(Refused::By("full"))]);
        assert_eq!(consumed, [1, 2]);
    }

    #[test]
    fn the_producer_makes_the_next_item_while_the_last_is_consumed_never_two_ahead() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::{Arc, Barrier};
        // Item 1's consumer waits at the barrier until the producer has made item 2.
        let made = Arc::new(AtomicU32::new(0));
        let item_2_made = Arc::new(Barrier::new(2));
        let (m, b) = (made.clone(), item_2_made.clone());
        let mut most_ahead = 0;
        hand_over(
            move |hand: &mut dyn FnMut(u32) -> Result<(), Refused<()>>| {
                for i in 1..=4 {
                    m.store(i, Ordering::SeqCst);
                    if i == 2 {
                        b.wait();
                    }
                    hand(i).unwrap();
                }
            },
            &mut |i| {
                if i == 1 {
                    item_2_made.wait();
                }
                // A slow consumer: a producer free to run ahead would be two or more ahead.
                std::thread::sleep(std::time::Duration::from_millis(20));
                most_ahead = most_ahead.max(made.load(Ordering::SeqCst) - i);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(most_ahead, 1);
    }

    #[test]
    fn a_panicking_consumer_stops_the_producer_and_the_panic_goes_on() {
        let (tx, rx) = std::sync::mpsc::channel();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            hand_over(
                |hand: &mut dyn FnMut(u32) -> Result<(), Refused<()>>| {
                    // Before the fix, this waited forever for an answer.
                    for i in 0..10 {
                        if let Err(refused) = hand(i) {
                            tx.send((i, refused)).unwrap();
                            return;
                        }
                    }
                },
                &mut |i| {
                    if i == 2 {
                        panic!("simulated crash in the consumer");
                    }
                    Ok(())
                },
            )
        }));
        let panic = outcome.expect_err("the consumer's panic goes on");
        assert_eq!(
            panic.downcast_ref::<&str>(),
            Some(&"simulated crash in the consumer")
        );
        assert_eq!(rx.try_recv().unwrap(), (3, Refused::Gone));
    }

    #[test]
    fn a_producer_that_hands_nothing_over_returns_its_result() {
        let r = hand_over(
            |_: &mut dyn FnMut(u8) -> Result<(), Refused<()>>| 7,
            &mut |_| unreachable!("nothing is handed over"),
        );
        assert_eq!(r.unwrap(), 7);
    }

    #[test]
    fn a_panicking_producer_is_an_error_not_a_hang() {
        let r = hand_over(
            |hand: &mut dyn FnMut(u8) -> Result<(), Refused<()>>| {
                hand(1).unwrap();
                panic!("simulated producer crash");
            },
            &mut |_| Ok(()),
        );
        assert!(r.is_err());
    }
}
