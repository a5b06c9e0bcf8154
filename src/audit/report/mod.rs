//! Renders a [`Report`](super::Report): a table for people, JSON for programs, and
//! Prometheus text for the node_exporter textfile collector. Rendering returns text;
//! the caller decides where it goes.

mod json;
mod prometheus;
mod table;

pub use json::json;
pub use prometheus::prometheus;
pub use table::{table, TableOptions};

/// The date part of a time, `YYYY-MM-DD` (UTC).
fn date(t: time::OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
