//! A fingerprint of everything a decoder emits for a capture, and its allocations, to
//! check that a change to a decoder keeps its output and to count what it allocates.
//!
//! `cargo run --release -p foodgate-parsers --example digest -- PROTOCOL FILE`
//!
//! Prints the number of readings and diagnostics, a hash of the `Debug` text of every event
//! (the same for 64 KiB chunks, 4 KiB chunks and odd 1,000-byte chunks, or it says so) and
//! the heap allocations per reading of a 64 KiB-chunk run.

use foodgate_parsers::{new_decoder, DecoderConfig, Event, Protocol};
use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// FNV-1a over the `Debug` text of the events, in order.
#[derive(Default)]
struct Digest {
    hash: u64,
    readings: usize,
    diagnostics: usize,
    events: usize,
}

impl Digest {
    fn add(&mut self, e: &Event) {
        if self.hash == 0 {
            self.hash = 0xcbf2_9ce4_8422_2325;
        }
        match e {
            Event::Reading(_) => self.readings += 1,
            Event::Diagnostic(_) => self.diagnostics += 1,
            _ => {}
        }
        self.events += 1;
        for b in format!("{e:?}").bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn digest(protocol: Protocol, bytes: &[u8], chunk: usize) -> Digest {
    let mut d = new_decoder(protocol, DecoderConfig::default());
    let mut out = Vec::new();
    let mut dig = Digest::default();
    for c in bytes.chunks(chunk) {
        d.feed(c, &mut out);
        out.drain(..).for_each(|e| dig.add(&e));
    }
    d.finish(&mut out);
    out.drain(..).for_each(|e| dig.add(&e));
    dig
}

/// (allocations, readings) of a run with 64 KiB chunks, events dropped as they come.
fn allocations(protocol: Protocol, bytes: &[u8]) -> (u64, usize) {
    let mut d = new_decoder(protocol, DecoderConfig::default());
    let mut out = Vec::with_capacity(4096);
    let mut readings = 0;
    let before = ALLOCS.load(Ordering::Relaxed);
    for c in bytes.chunks(64 * 1024) {
        d.feed(c, &mut out);
        readings += out
            .drain(..)
            .filter(|e| matches!(e, Event::Reading(_)))
            .count();
    }
    d.finish(&mut out);
    readings += out
        .drain(..)
        .filter(|e| matches!(e, Event::Reading(_)))
        .count();
    (ALLOCS.load(Ordering::Relaxed) - before, readings)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(proto), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: digest PROTOCOL FILE");
        return ExitCode::from(2);
    };
    let protocol = match proto.parse::<Protocol>() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let whole = digest(protocol, &bytes, 64 * 1024);
    println!(
        "{proto}: {} events, {} readings, {} diagnostics, digest {:016x}",
        whole.events, whole.readings, whole.diagnostics, whole.hash
    );
    let mut same = true;
    for chunk in [4096, 1000] {
        let other = digest(protocol, &bytes, chunk);
        if other.hash != whole.hash || other.events != whole.events {
            println!("{chunk}-byte chunks: digest {:016x} DIFFERS", other.hash);
            same = false;
        }
    }
    let (allocs, readings) = allocations(protocol, &bytes);
    println!(
        "allocations: {allocs} for {readings} readings ({:.2} per reading)",
        allocs as f64 / readings.max(1) as f64
    );
    if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
