//! What the workload saw, in the order it saw it: messages the cluster acknowledged to a
//! producer, every pull answer a consumer got, and every consumer ack the cluster
//! confirmed. A logical clock orders pulls against acks, which is what tells a
//! redelivery (allowed) from a delivery after a confirmed ack (a defect).

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// A message a producer got a receipt for (acks=all): the cluster promised to keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acked {
    pub id: String,
    pub producer: usize,
    pub partition: u32,
    pub offset: u64,
    /// The node answered that it had the id already (dedup); the position is the
    /// original's.
    pub duplicate: bool,
}

/// One message of a pull answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub partition: u32,
    pub offset: u64,
    /// 1 on first delivery to the group, then 2, 3, ...
    pub attempt: u32,
}

/// One pull answer, as the consumer got it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pull {
    pub consumer: usize,
    /// The logical clock when the pull was sent: everything confirmed before this
    /// was settled at the node before the node saw the pull.
    pub sent_at: u64,
    pub deliveries: Vec<Delivery>,
}

/// A consumer ack the cluster confirmed as newly acknowledging the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AckConfirmed {
    pub consumer: usize,
    pub id: String,
    pub partition: u32,
    pub offset: u64,
    /// The logical clock when the confirmation arrived.
    pub confirmed_at: u64,
}

/// The whole record of a run. Bounded: past `limit` records of a kind it stops
/// recording and sets `truncated` (the checker then fails: it cannot vouch for a
/// history it did not keep).
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub acked: Vec<Acked>,
    pub pulls: Vec<Pull>,
    pub acks: Vec<AckConfirmed>,
    pub truncated: bool,
    #[serde(skip)]
    clock: u64,
    /// Deliveries held in `pulls` (kept so the bound costs nothing per pull).
    #[serde(skip)]
    delivered: usize,
    #[serde(skip)]
    limit: usize,
}

impl History {
    /// An empty history keeping at most `limit` records of each kind (deliveries
    /// counted one by one).
    pub fn new(limit: usize) -> History {
        History {
            limit,
            ..History::default()
        }
    }

    /// Advances the logical clock and returns its new value.
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn push_acked(&mut self, a: Acked) {
        if self.acked.len() >= self.limit {
            self.truncated = true;
            return;
        }
        self.acked.push(a);
    }

    pub fn push_pull(&mut self, p: Pull) {
        if self.delivered + p.deliveries.len() > self.limit {
            self.truncated = true;
            return;
        }
        self.delivered += p.deliveries.len();
        self.pulls.push(p);
    }

    /// Records a confirmed ack, stamping it with the clock now.
    pub fn push_ack(&mut self, consumer: usize, d: &Delivery) {
        if self.acks.len() >= self.limit {
            self.truncated = true;
            return;
        }
        let confirmed_at = self.tick();
        self.acks.push(AckConfirmed {
            consumer,
            id: d.id.clone(),
            partition: d.partition,
            offset: d.offset,
            confirmed_at,
        });
    }

    pub fn deliveries(&self) -> usize {
        self.delivered
    }
}

/// The history shared by producer and consumer tasks. Its lock is never held across an
/// await.
#[derive(Clone, Debug)]
pub struct Recorder(Arc<Mutex<History>>);

impl Recorder {
    pub fn new(limit: usize) -> Recorder {
        Recorder(Arc::new(Mutex::new(History::new(limit))))
    }

    /// The history; a task that panicked holding the lock leaves it as it was.
    pub fn lock(&self) -> MutexGuard<'_, History> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the history as it is now.
    pub fn snapshot(&self) -> History {
        self.lock().clone()
    }
}
