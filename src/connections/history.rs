//! The event log newest first: the dashboard's recent events and one connection's history. The
//! store pages forward only (`after`), so this walks back in windows of ids. Each window costs
//! at most two windows of reads, and one request reads at most [`SCAN_CAP`] ids' worth; beyond
//! that the page ends early with a cursor to go on.

use super::events::{self, Event};
use super::{ConnectError, Connections};
use crate::vault::VaultError;

/// Newest-first events and the cursor for older ones.
#[derive(Debug, Default)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// Pass as `before` for the next, older page.
    pub older: Option<u64>,
}

const WINDOW: u64 = 256;
const SCAN_CAP: u64 = 20_000;

/// `store.events(after, limit, filter)`: the first `limit` matching events with id > `after`.
type Fetch<'a> = dyn Fn(u64, usize, &dyn Fn(&Event) -> bool) -> Result<Vec<Event>, VaultError> + 'a;

impl Connections {
    /// Events with id below `before` (all when `None`), newest first, optionally of one type.
    pub async fn recent_events(
        &self,
        before: Option<u64>,
        limit: usize,
        kind: Option<String>,
    ) -> Result<EventPage, ConnectError> {
        if let Some(k) = &kind {
            if !events::TYPES.contains(&k.as_str()) {
                return Err(ConnectError::InvalidRequest(format!(
                    "type must be one of {}",
                    events::TYPES.join(", ")
                )));
            }
        }
        let limit = limit.clamp(1, 500);
        self.blocking(move |s| {
            let keep = |e: &Event| kind.as_ref().is_none_or(|k| *k == e.kind);
            newest(&|a, l, f| s.events(a, l, f), before, limit, &keep)
        })
        .await
    }

    /// One connection's events, newest first.
    pub async fn history(
        &self,
        connection_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, ConnectError> {
        let id = connection_id.to_string();
        let limit = limit.clamp(1, 500);
        self.blocking(move |s| {
            let keep = |e: &Event| e.connection_id == id;
            newest(&|a, l, f| s.events(a, l, f), before, limit, &keep)
        })
        .await
    }
}

fn first_after(fetch: &Fetch<'_>, after: u64) -> Result<Option<u64>, VaultError> {
    Ok(fetch(after, 1, &|_| true)?.first().map(|e| e.id))
}

/// The highest event id, found by galloping from `known` (an id that exists).
fn last_id(fetch: &Fetch<'_>, known: u64) -> Result<u64, VaultError> {
    let mut last = known;
    let mut step = 1u64;
    loop {
        match first_after(fetch, last.saturating_add(step))? {
            Some(id) => {
                last = id;
                step = step.saturating_mul(2);
            }
            None if step > 1 => step /= 2,
            None => match first_after(fetch, last)? {
                Some(id) => last = id,
                None => return Ok(last),
            },
        }
    }
}

fn newest(
    fetch: &Fetch<'_>,
    before: Option<u64>,
    limit: usize,
    keep: &dyn Fn(&Event) -> bool,
) -> Result<EventPage, VaultError> {
    let Some(oldest) = first_after(fetch, 0)? else {
        return Ok(EventPage::default());
    };
    // Exclusive upper bound of the ids still to look at.
    let end = last_id(fetch, oldest)?.saturating_add(1);
    let mut hi = before.map_or(end, |b| b.min(end));
    let mut data = Vec::new();
    let mut scanned = 0;
    while hi > oldest && data.len() < limit {
        if scanned >= SCAN_CAP {
            return Ok(EventPage {
                data,
                older: Some(hi),
            });
        }
        let lo = hi.saturating_sub(WINDOW);
        // The window is the ids in (lo, hi): fewer than WINDOW, so all its matches fit in one
        // answer. Counting every later event as a match makes the store stop soon after `hi`.
        let top = hi;
        let got = fetch(lo, WINDOW as usize, &|e| e.id >= top || keep(e))?;
        for e in got.into_iter().filter(|e| e.id < top).rev() {
            if data.len() == limit {
                break;
            }
            data.push(e);
        }
        scanned += WINDOW;
        hi = lo + 1;
    }
    let older = if data.len() == limit {
        data.last().map(|e| e.id)
    } else {
        None
    };
    Ok(EventPage { data, older })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(ids: impl Iterator<Item = u64>) -> Vec<Event> {
        ids.map(|id| Event {
            id,
            kind: if id % 3 == 0 { "a" } else { "b" }.into(),
            connection_id: format!("c{}", id % 5),
            tenant_id: "t".into(),
            plugin: "p".into(),
            at: 0,
            error_code: None,
        })
        .collect()
    }

    fn page(events: &[Event], before: Option<u64>, limit: usize, kind: &str) -> EventPage {
        let fetch = |after: u64, l: usize, f: &dyn Fn(&Event) -> bool| {
            Ok(events
                .iter()
                .filter(|e| e.id > after && f(e))
                .take(l)
                .cloned()
                .collect())
        };
        let keep = |e: &Event| kind.is_empty() || e.kind == kind;
        newest(&fetch, before, limit, &keep).expect("page")
    }

    fn ids(p: &EventPage) -> Vec<u64> {
        p.data.iter().map(|e| e.id).collect()
    }

    #[test]
    fn pages_newest_first_across_windows_and_gaps() {
        assert!(page(&[], None, 10, "").data.is_empty());
        // Swept at the old end, sparse in the middle.
        let events = log((500..900).chain((1000..3000).step_by(7)));
        let all: Vec<u64> = events.iter().rev().map(|e| e.id).collect();
        let p = page(&events, None, 10, "");
        assert_eq!(ids(&p), all[..10]);
        let p2 = page(&events, p.older, 10, "");
        assert_eq!(ids(&p2), all[10..20]);
        // Walking every page yields every event exactly once.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let p = page(&events, before, 97, "");
            seen.extend(ids(&p));
            match p.older {
                Some(o) => before = Some(o),
                None => break,
            }
        }
        assert_eq!(seen, all);
        let filtered: Vec<u64> = all.iter().copied().filter(|id| id % 3 == 0).collect();
        assert_eq!(ids(&page(&events, None, 1000, "a")), filtered);
    }

    #[test]
    fn finds_the_last_id() {
        for n in [1u64, 2, 3, 255, 256, 257, 1000] {
            let events = log(5..5 + n);
            let fetch = |after: u64, l: usize, f: &dyn Fn(&Event) -> bool| {
                Ok(events
                    .iter()
                    .filter(|e| e.id > after && f(e))
                    .take(l)
                    .cloned()
                    .collect())
            };
            assert_eq!(last_id(&fetch, 5).expect("last"), 4 + n);
        }
    }
}
