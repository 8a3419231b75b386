//! What every decoder target checks, and the heap counter that lets it see a decoder's memory.
//!
//! A decoder target feeds the input three ways: whole, in chunks whose sizes a small PRNG
//! seeded by the input's first bytes picks, and a byte at a time. The three event lists must be
//! equal (readings, diagnostics, link and device events alike), no event may point past the end
//! of the input, and after every `feed` the heap the decoder keeps must stay within its
//! protocol's documented buffer bound (plus the largest chunk it was handed, whose capacity a
//! buffer may keep, and a fixed allowance for its small state).

pub mod rows;

use foodgate_parsers::event::LinkEvent;
use foodgate_parsers::{new_decoder, DecoderConfig, Encoding, Event, Protocol};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes live now.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The documented bound on what a decoder of `protocol` buffers.
pub fn buffer_bound(protocol: Protocol) -> usize {
    use foodgate_parsers::{astm, dy723pc, enzyme_print, gold_card, hl7, polled_frame, spectro};
    match protocol {
        // Frame text, plus the record carried over an ETB chain.
        Protocol::Astm => astm::MAX_FRAME_TEXT + astm::MAX_RECORD,
        Protocol::Hl7 => hl7::MAX_MESSAGE,
        // A frame, and the last result frame kept to recognise its retransmission.
        Protocol::GoldCard => {
            2 * (gold_card::HEADER_LEN + gold_card::MAX_PAYLOAD + gold_card::CRC_LEN)
        }
        Protocol::Spectro => spectro::MAX_SENTENCE,
        Protocol::EnzymePrint => enzyme_print::MAX_LINE * (1 + enzyme_print::MAX_REPORT_LINES),
        // One frame of the polled binary devices.
        Protocol::Lz4000t | Protocol::Tl310 => polled_frame::MAX_FRAME,
        // A record (its fields and check code), and the tail kept while `FINISH` may follow.
        Protocol::Dy723pc => 2 * dy723pc::MAX_RECORD,
    }
}

/// Room for a decoder's small state beside its buffers: the box, a pending reading or two
/// (readings wait for the frame, message or report that closes them), reused text buffers.
const STATE_ALLOWANCE: usize = 64 * 1024;

/// Configurations built once: building one clones the alias table.
static CONFIGS: LazyLock<Vec<DecoderConfig>> = LazyLock::new(|| {
    [
        None,
        Some(Encoding::Latin1),
        Some(Encoding::Utf8),
        Some(Encoding::Gbk),
        Some(Encoding::Gb18030),
    ]
    .into_iter()
    .map(|encoding| DecoderConfig {
        encoding,
        ..DecoderConfig::default()
    })
    .collect()
});

/// splitmix64: a few good bits per step from any seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Mostly small chunks (where cuts inside frames happen), sometimes big ones.
    fn chunk(&mut self) -> usize {
        let r = self.next();
        let n = (r >> 8) as usize;
        match r % 8 {
            0..=3 => 1 + n % 8,
            4 | 5 => 1 + n % 64,
            6 => 1 + n % 1024,
            _ => usize::MAX,
        }
    }
}

fn brief(e: Option<&Event>) -> String {
    format!("{e:?}").chars().take(800).collect()
}

/// Feed `data` in the chunk sizes `sizes` gives, checking each event against `whole` as it
/// comes (so that no event is kept and the heap left is the decoder's own).
fn check_chunked(
    protocol: Protocol,
    config: &DecoderConfig,
    data: &[u8],
    whole: &[Event],
    mut sizes: impl FnMut() -> usize,
    what: &str,
) {
    let bound = buffer_bound(protocol);
    let mut out: Vec<Event> = Vec::with_capacity(64);
    let mut seen = 0usize;
    let compare = |out: &mut Vec<Event>, seen: &mut usize| {
        for e in out.drain(..) {
            assert!(
                whole.get(*seen) == Some(&e),
                "{protocol:?} {what}: event {} differs from the whole-input decode\n got: {}\nwant: {}",
                *seen,
                brief(Some(&e)),
                brief(whole.get(*seen)),
            );
            *seen += 1;
        }
    };
    let base = live_bytes();
    let mut d = new_decoder(protocol, config.clone());
    let mut rest = data;
    let mut largest = 0usize;
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        largest = largest.max(n);
        d.feed(&rest[..n], &mut out);
        rest = &rest[n..];
        compare(&mut out, &mut seen);
        // `out` keeps its capacity after a chunk that gave many events: that is ours.
        let ours = out.capacity() * std::mem::size_of::<Event>();
        let kept = live_bytes().saturating_sub(base + ours);
        let allowed = bound + largest + STATE_ALLOWANCE;
        assert!(
            kept <= allowed,
            "{protocol:?} {what}: the decoder keeps {kept} heap bytes after {} input bytes, \
             more than its buffer bound {bound} + largest chunk {largest} + {STATE_ALLOWANCE}",
            data.len() - rest.len(),
        );
    }
    d.finish(&mut out);
    compare(&mut out, &mut seen);
    assert_eq!(
        seen,
        whole.len(),
        "{protocol:?} {what}: {seen} events, the whole-input decode gave {}; first missing: {}",
        whole.len(),
        brief(whole.get(seen)),
    );
}

fn offsets(e: &Event) -> Vec<u64> {
    match e {
        Event::Reading(r) => r.offset.into_iter().collect(),
        Event::Diagnostic(d) => vec![d.offset],
        Event::Device(d) => vec![d.offset],
        Event::Heartbeat(h) => vec![h.offset],
        Event::Link(
            LinkEvent::Enq { offset }
            | LinkEvent::Eot { offset }
            | LinkEvent::Frame { offset, .. }
            | LinkEvent::MessageEnd { offset, .. }
            | LinkEvent::Reply { offset, .. },
        ) => vec![*offset],
    }
}

/// The decoder target: `data` decoded whole, in seeded chunks and a byte at a time must give
/// the same events, within the memory bound.
pub fn check_decoder(protocol: Protocol, data: &[u8]) {
    let mut seed = [0u8; 8];
    let head = &data[..data.len().min(8)];
    seed[..head.len()].copy_from_slice(head);
    let seed = u64::from_le_bytes(seed) ^ (data.len() as u64).rotate_left(40);
    let config = &CONFIGS[(seed % CONFIGS.len() as u64) as usize];

    let mut d = new_decoder(protocol, config.clone());
    let mut whole = Vec::new();
    d.feed(data, &mut whole);
    d.finish(&mut whole);
    drop(d);
    for e in &whole {
        for o in offsets(e) {
            assert!(
                o <= data.len() as u64,
                "{protocol:?}: offset {o} past the end of a {}-byte input in {}",
                data.len(),
                brief(Some(e)),
            );
        }
    }

    let mut rng = Rng(seed);
    check_chunked(
        protocol,
        config,
        data,
        &whole,
        || rng.chunk(),
        "seeded chunks",
    );
    check_chunked(protocol, config, data, &whole, || 1, "byte at a time");
}
