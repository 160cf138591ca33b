//! The live feed's machinery: one `watch` channel per watched event holding its latest
//! figures, refreshed from the store when a domain event about it arrives, and a per-client
//! [`Feed`] that sends each event's figures at most once per second, the latest value
//! winning (a slow client skips values; nothing queues up). A feed that follows everything
//! its caller may see also takes in the events created after it opened: the hub announces
//! each new event once the projection has it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use evently_core::identity::Identity;
use evently_core::ids::UserId;
use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::analytics::{Holds, Money, holds, money};
use crate::service::AnalyticsService;
use crate::store::EventFigures;

/// Least time between two messages about one event to one client.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// How long a refresh waits for the projection to reach the version a domain event
/// announced before publishing what it has.
const CATCH_UP_ATTEMPTS: u32 = 50;
const CATCH_UP_PAUSE: Duration = Duration::from_millis(100);
/// New events announced to following feeds and not yet taken in by a slow one.
const ANNOUNCED: usize = 256;

/// One live message: an event's figures now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveFigures {
    /// Always `figures`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// Its title.
    pub event_name: String,
    /// Its status.
    pub status: String,
    /// Seats in all.
    pub capacity: i64,
    /// Seats sold.
    pub sold: i64,
    /// Seats in live holds.
    pub held: i64,
    /// Seats neither sold nor held.
    pub available: i64,
    /// The inventory version these seat figures are of.
    pub inventory_version: i64,
    /// Orders not cancelled.
    pub orders: i64,
    /// Tickets of orders not cancelled.
    pub tickets: i64,
    /// Orders cancelled.
    pub cancellations: i64,
    /// Money per currency.
    pub revenue: Vec<Money>,
    /// Holds by outcome.
    pub holds: Holds,
    /// Waitlist offers made.
    pub waitlist_offers: i64,
    /// Buyers waiting on the waitlist now.
    pub waitlist_length: i64,
}

impl LiveFigures {
    /// The live message of `f`.
    pub fn of(f: &EventFigures) -> Self {
        Self {
            kind: "figures".into(),
            event_id: f.event_id,
            event_name: f.name.clone(),
            status: f.status.clone(),
            capacity: f.capacity,
            sold: f.sold,
            held: f.held,
            available: f.available,
            inventory_version: f.version,
            orders: f.orders,
            tickets: f.tickets,
            cancellations: f.cancellations,
            revenue: money(&f.money),
            holds: holds(f),
            waitlist_offers: f.waitlist_offers,
            waitlist_length: f.waitlist_length,
        }
    }
}

/// One live message, serialised once for every client that receives it.
#[derive(Debug, PartialEq)]
pub struct LiveMessage {
    /// What it says.
    pub figures: LiveFigures,
    /// `figures` as JSON: the text of the WebSocket message and of the server-sent event.
    pub json: Utf8Bytes,
}

impl LiveMessage {
    /// The message of `f`.
    pub fn of(f: &EventFigures) -> Self {
        Self::from(LiveFigures::of(f))
    }
}

impl From<LiveFigures> for LiveMessage {
    fn from(figures: LiveFigures) -> Self {
        // Serialising plain numbers and strings into a `String` cannot fail.
        let json = serde_json::to_string(&figures).unwrap_or_default().into();
        Self { figures, json }
    }
}

/// The latest message of one event's channel.
pub type Slot = Option<Arc<LiveMessage>>;

/// The watched events' latest figures, and the live connections per user.
pub struct LiveHub {
    service: Arc<AnalyticsService>,
    channels: Mutex<HashMap<Uuid, watch::Sender<Slot>>>,
    /// Events to read again, with the inventory version the projection must have reached.
    dirty: Mutex<HashMap<Uuid, i64>>,
    /// Events just created, to announce to following feeds once the projection has them.
    created: Mutex<HashSet<Uuid>>,
    announce: broadcast::Sender<Arc<EventFigures>>,
    wake: Notify,
    connections: Mutex<HashMap<UserId, usize>>,
    /// Cancelled when the process shuts down: live connections close with 1001.
    pub shutdown: CancellationToken,
    /// The live connections, for the server to wait for on shutdown.
    pub sockets: TaskTracker,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").finish_non_exhaustive()
    }
}

/// A live connection counted against its user's cap; dropping it frees the place.
#[derive(Debug)]
pub struct Place {
    hub: Arc<LiveHub>,
    user: UserId,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut all) = self.hub.connections.lock()
            && let Some(n) = all.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                all.remove(&self.user);
            }
        }
        metrics::gauge!("evently_analytics_live_connections").decrement(1.0);
    }
}

impl LiveHub {
    /// A hub reading figures through `service`.
    pub fn new(service: Arc<AnalyticsService>) -> Self {
        Self {
            service,
            channels: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashMap::new()),
            created: Mutex::new(HashSet::new()),
            announce: broadcast::channel(ANNOUNCED).0,
            wake: Notify::new(),
            connections: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            sockets: TaskTracker::new(),
        }
    }

    /// Takes one of `user`'s `cap` live connections; `None` when all are taken.
    pub fn admit(self: &Arc<Self>, user: UserId, cap: usize) -> Option<Place> {
        let mut all = self.connections.lock().ok()?;
        let n = all.entry(user).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        metrics::gauge!("evently_analytics_live_connections").increment(1.0);
        Some(Place {
            hub: self.clone(),
            user,
        })
    }

    /// The figures channel of `event`, primed with `current` when it is new.
    pub fn subscribe(&self, event: Uuid, current: &EventFigures) -> watch::Receiver<Slot> {
        let Ok(mut channels) = self.channels.lock() else {
            return watch::channel(Some(Arc::new(LiveMessage::of(current)))).1;
        };
        let mut created = false;
        let receiver = channels
            .entry(event)
            .or_insert_with(|| {
                created = true;
                watch::channel(Some(Arc::new(LiveMessage::of(current)))).0
            })
            .subscribe();
        drop(channels);
        if created {
            // A change applied between reading `current` and creating the channel told no
            // one: read the figures once more.
            self.changed(event, 0);
        }
        receiver
    }

    /// Notes that `event` changed, up to inventory version `version` (0 when unknown):
    /// its watchers get the new figures once the projection has them.
    pub fn changed(&self, event: Uuid, version: i64) {
        let watched = self
            .channels
            .lock()
            .is_ok_and(|c| c.get(&event).is_some_and(|s| s.receiver_count() > 0));
        if !watched {
            return;
        }
        if let Ok(mut dirty) = self.dirty.lock() {
            let v = dirty.entry(event).or_default();
            *v = (*v).max(version);
        }
        self.wake.notify_one();
    }

    /// Notes that `event` was created: feeds that follow every event their caller may see
    /// take it in once the projection has it.
    pub fn created(&self, event: Uuid) {
        if let Ok(mut created) = self.created.lock() {
            created.insert(event);
        }
        self.wake.notify_one();
    }

    /// Announcements of new events, for a feed that follows everything its caller may see.
    /// Taken before the caller's events are listed, so that none falls between the two.
    pub fn follow(self: &Arc<Self>, caller: Identity, max: usize) -> Follow {
        Follow {
            hub: self.clone(),
            caller,
            max,
            announced: self.announce.subscribe(),
        }
    }

    /// Reads changed events' figures into their channels until `shutdown`; drops the
    /// channels nobody watches any more.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut retries: HashMap<Uuid, Refresh> = HashMap::new();
        loop {
            let pause = if retries.is_empty() {
                None
            } else {
                Some(CATCH_UP_PAUSE)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = async { tokio::time::sleep(pause.unwrap_or_default()).await }, if pause.is_some() => {}
            }
            let mut work = std::mem::take(&mut retries);
            if let Ok(mut dirty) = self.dirty.lock() {
                for (id, version) in dirty.drain() {
                    let w = work.entry(id).or_default();
                    w.version = w.version.max(version);
                }
            }
            if let Ok(mut created) = self.created.lock() {
                for id in created.drain() {
                    work.entry(id).or_default().created = true;
                }
            }
            for (id, w) in work {
                let retry = Refresh {
                    attempts: w.attempts + 1,
                    ..w
                };
                match self.service.store().event(id).await {
                    Ok(Some(f)) if f.version < w.version && w.attempts < CATCH_UP_ATTEMPTS => {
                        retries.insert(id, retry);
                    }
                    Ok(Some(f)) => {
                        self.publish(id, &f);
                        if w.created && !f.deleted && f.organizer_id.is_some() {
                            // No feed following: nobody to tell.
                            let _ = self.announce.send(Arc::new(f));
                        }
                    }
                    // Announced by another replica's stream before this one's projection has
                    // it: wait for it as for a version.
                    Ok(None) if w.created && w.attempts < CATCH_UP_ATTEMPTS => {
                        retries.insert(id, retry);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(event.id = %id, error = %e, "live figures not read");
                        if w.attempts < CATCH_UP_ATTEMPTS {
                            retries.insert(id, retry);
                        }
                    }
                }
            }
            if let Ok(mut channels) = self.channels.lock() {
                channels.retain(|_, s| s.receiver_count() > 0);
            }
        }
    }

    fn publish(&self, event: Uuid, figures: &EventFigures) {
        let next = LiveFigures::of(figures);
        if let Ok(channels) = self.channels.lock()
            && let Some(sender) = channels.get(&event)
        {
            sender.send_if_modified(|slot| {
                if slot.as_ref().is_some_and(|m| m.figures == next) {
                    false
                } else {
                    *slot = Some(Arc::new(LiveMessage::from(next)));
                    true
                }
            });
        }
    }
}

/// What the refresher still has to read about one event.
#[derive(Debug, Default, Clone, Copy)]
struct Refresh {
    /// The inventory version the projection must reach first (0: any).
    version: i64,
    /// Whether the event is new, to be announced to following feeds.
    created: bool,
    /// Reads that found the projection behind so far.
    attempts: u32,
}

/// A feed's subscription to new events: those its caller may see join the feed while it
/// watches fewer than `max`.
pub struct Follow {
    hub: Arc<LiveHub>,
    caller: Identity,
    max: usize,
    announced: broadcast::Receiver<Arc<EventFigures>>,
}

/// One client's view of its watched events: each event's latest figures, at most once per
/// [`MIN_GAP`].
///
/// A watch that was sent a message is looked at again once the gap has passed (and sent its
/// latest value if it changed meanwhile); only a watch quiet for longer than the gap waits
/// for its next change, which then goes at once. During a sale a client's task therefore
/// wakes once per gap, not also at every change.
pub struct Feed {
    watches: Vec<watch::Receiver<Slot>>,
    /// Per watch: whether it holds a value not sent yet that `has_changed` no longer
    /// shows (a new watch's first value, or a change that `changed` has marked seen).
    unsent: Vec<bool>,
    /// Watches to look at, and when.
    due: BTreeMap<usize, Instant>,
    closed: Vec<bool>,
    /// New events to take in, when the feed follows everything its caller may see.
    follow: Option<Follow>,
}

impl Feed {
    /// A feed of `watches`; their current values go first.
    pub fn new(watches: Vec<watch::Receiver<Slot>>) -> Self {
        let now = Instant::now();
        let n = watches.len();
        Self {
            watches,
            unsent: vec![true; n],
            due: (0..n).map(|i| (i, now)).collect(),
            closed: vec![false; n],
            follow: None,
        }
    }

    /// The feed, also taking in the new events `follow` announces.
    #[must_use]
    pub fn following(mut self, follow: Follow) -> Self {
        self.follow = Some(follow);
        self
    }

    /// Whether one of the watches is of `event`.
    fn watches(&self, event: Uuid) -> bool {
        self.watches.iter().any(|w| {
            w.borrow()
                .as_ref()
                .is_some_and(|m| m.figures.event_id == event)
        })
    }

    /// Takes in an announced event when the caller may see it, it is not watched yet and
    /// there is room: its figures go first.
    fn take_in(&mut self, figures: &EventFigures) {
        let Some(follow) = &self.follow else { return };
        if !figures.visible_to(&follow.caller)
            || self.watches.len() >= follow.max
            || self.watches(figures.event_id)
        {
            return;
        }
        let watch = follow.hub.subscribe(figures.event_id, figures);
        self.watches.push(watch);
        self.unsent.push(true);
        self.closed.push(false);
        self.due.insert(self.watches.len() - 1, Instant::now());
    }

    /// The next message: the current value of a watch that is due and has changed since
    /// it was last sent (or was never sent). Cancel-safe.
    pub async fn next(&mut self) -> Arc<LiveMessage> {
        loop {
            let now = Instant::now();
            if let Some((&i, _)) = self.due.iter().find(|(_, at)| **at <= now) {
                self.due.remove(&i);
                let fresh = self.unsent[i] || self.watches[i].has_changed().unwrap_or(false);
                self.unsent[i] = false;
                if fresh && let Some(value) = self.watches[i].borrow_and_update().clone() {
                    self.due.insert(i, now + MIN_GAP);
                    return value;
                }
                continue;
            }
            let next_due = self.due.values().min().copied();
            let changed = {
                let (due, closed) = (&self.due, &self.closed);
                let futures: Vec<_> = self
                    .watches
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| !closed[*i] && !due.contains_key(i))
                    .map(|(i, w)| Box::pin(async move { (i, w.changed().await.is_ok()) }))
                    .collect();
                async move {
                    if futures.is_empty() {
                        std::future::pending::<(usize, bool)>().await
                    } else {
                        futures_util::future::select_all(futures).await.0
                    }
                }
            };
            let sleep = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let follow = &mut self.follow;
            let announced = async {
                match follow.as_mut() {
                    Some(follow) => follow.announced.recv().await,
                    None => std::future::pending().await,
                }
            };
            let woke = tokio::select! {
                (i, open) = changed => Woke::Changed(i, open),
                () = sleep => Woke::Due,
                announced = announced => Woke::Announced(announced),
            };
            match woke {
                // Quiet for longer than the gap: the change goes at once.
                Woke::Changed(i, true) => {
                    self.unsent[i] = true;
                    self.due.insert(i, Instant::now());
                }
                Woke::Changed(i, false) => self.closed[i] = true,
                Woke::Due => {}
                Woke::Announced(Ok(figures)) => self.take_in(&figures),
                // Announcements missed by a feed too slow to take them in are not replayed.
                Woke::Announced(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Woke::Announced(Err(broadcast::error::RecvError::Closed)) => self.follow = None,
            }
        }
    }
}

/// What woke a feed waiting for its next message.
enum Woke {
    Changed(usize, bool),
    Due,
    Announced(Result<Arc<EventFigures>, broadcast::error::RecvError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(event: Uuid, tickets: i64) -> Slot {
        Some(Arc::new(LiveMessage::of(&EventFigures {
            event_id: event,
            tickets,
            ..EventFigures::default()
        })))
    }

    #[tokio::test]
    async fn a_slow_reader_gets_the_latest_value_once_per_gap_never_a_queue() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (tx_a, rx_a) = watch::channel(figures(a, 0));
        let (tx_b, rx_b) = watch::channel(figures(b, 0));
        let mut feed = Feed::new(vec![rx_a, rx_b]);
        for n in 1..=100 {
            tx_a.send_replace(figures(a, n));
        }

        let first = feed.next().await;
        let second = feed.next().await;
        for n in 101..=150 {
            tx_a.send_replace(figures(a, n));
        }
        tx_b.send_replace(figures(b, 7));
        let third = feed.next().await;
        let fourth = feed.next().await;

        // Both events' current values first, the 100 changes of `a` coalesced into one.
        assert_eq!((first.figures.event_id, first.figures.tickets), (a, 100));
        assert_eq!((second.figures.event_id, second.figures.tickets), (b, 0));
        // Then each event once more, with only its latest value.
        let mut later = [
            (third.figures.event_id, third.figures.tickets),
            (fourth.figures.event_id, fourth.figures.tickets),
        ];
        later.sort();
        let mut expected = [(a, 150), (b, 7)];
        expected.sort();
        assert_eq!(later, expected);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), feed.next())
                .await
                .is_err(),
            "nothing else is pending"
        );
    }

    #[tokio::test]
    async fn a_change_waits_out_the_gap_and_after_a_quiet_gap_goes_at_once() {
        let a = Uuid::now_v7();
        let (tx, rx) = watch::channel(figures(a, 0));
        let mut feed = Feed::new(vec![rx]);
        let start = Instant::now();
        assert_eq!(feed.next().await.figures.tickets, 0);

        // A change right after a message waits for the gap, and the latest value goes.
        tx.send_replace(figures(a, 1));
        tx.send_replace(figures(a, 2));
        assert_eq!(feed.next().await.figures.tickets, 2);
        let waited = start.elapsed();
        assert!(waited >= MIN_GAP, "sent after {waited:?}");

        // Nothing changed: nothing is sent when the gap passes again.
        assert!(
            tokio::time::timeout(MIN_GAP + Duration::from_millis(300), feed.next())
                .await
                .is_err()
        );
        // A change after a quiet gap goes at once.
        tx.send_replace(figures(a, 3));
        let message = tokio::time::timeout(Duration::from_millis(200), feed.next())
            .await
            .expect("sent at once");
        assert_eq!(message.figures.tickets, 3);
    }
}
