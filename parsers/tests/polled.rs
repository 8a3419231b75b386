//! The polled vendor devices `lz4000t`, `tl310`, `dy723pc` (`docs/protocols.md`): their
//! fixtures (replies as the devices send them, written by the scripts beside them), and the
//! rules the fixtures do not show on their own.

use crate::harness::{assert_chunking_invariant, check_fixtures, codes, decode, readings};
use foodgate_parsers::event::{FrameOutcome, LinkEvent, PolledReply};
use foodgate_parsers::{DecoderConfig, Event, Protocol};

#[test]
fn lz4000t_fixtures() {
    assert_eq!(check_fixtures(Protocol::Lz4000t), 6);
}

#[test]
fn tl310_fixtures() {
    assert_eq!(check_fixtures(Protocol::Tl310), 4);
}

#[test]
fn dy723pc_fixtures() {
    assert_eq!(check_fixtures(Protocol::Dy723pc), 5);
}

fn fixture(protocol: Protocol, name: &str) -> Vec<u8> {
    let path = crate::harness::fixtures_dir(protocol).join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn replies(events: &[Event]) -> Vec<PolledReply> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Link(LinkEvent::Reply { reply, .. }) => Some(reply.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_read_day_gives_its_count_and_every_record_in_order() {
    let events = decode(
        Protocol::Lz4000t,
        &DecoderConfig::default(),
        &fixture(Protocol::Lz4000t, "day_read"),
    );
    let r = replies(&events);
    assert!(matches!(&r[0], PolledReply::CommTest { .. }), "{r:?}");
    assert_eq!(
        r[1],
        PolledReply::Count {
            date: chrono::NaiveDate::from_ymd_opt(2018, 5, 21).unwrap(),
            records: 2
        }
    );
    let records: Vec<(u16, u16, FrameOutcome)> = r[2..]
        .iter()
        .map(|x| match x {
            PolledReply::Record {
                total,
                index,
                outcome,
            } => (*total, *index, *outcome),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        records,
        [
            (2, 1, FrameOutcome::Accepted),
            (2, 2, FrameOutcome::Accepted)
        ]
    );
    // Each record's reading comes before its reply.
    let first_reading = events.iter().position(|e| matches!(e, Event::Reading(_)));
    let first_record = events.iter().position(|e| {
        matches!(
            e,
            Event::Link(LinkEvent::Reply {
                reply: PolledReply::Record { .. },
                ..
            })
        )
    });
    assert!(first_reading < first_record);
}

#[test]
fn tl310_crc_ignore_takes_a_damaged_record_with_a_warning() {
    let bytes = fixture(Protocol::Tl310, "damaged");
    let strict = decode(Protocol::Tl310, &DecoderConfig::default(), &bytes);
    let lax_config = DecoderConfig {
        check_crc: false,
        ..DecoderConfig::default()
    };
    let lax = decode(Protocol::Tl310, &lax_config, &bytes);
    assert_eq!(readings(&lax).len(), readings(&strict).len() + 1);
    assert!(codes(&strict).contains(&"bad_crc"));
    assert_chunking_invariant(Protocol::Tl310, &lax_config, &bytes, "damaged, crc ignored");
}

#[test]
fn decoders_never_panic_and_stay_bounded_on_random_bytes() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for protocol in [Protocol::Lz4000t, Protocol::Tl310, Protocol::Dy723pc] {
        for round in 0..200 {
            let mut bytes = Vec::with_capacity(512);
            for _ in 0..(round * 7 % 512) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the bytes these protocols care about.
                let pick = [
                    0x7E, 0xAA, 0x11, 0x16, 0x14, 0x15, 0x00, b'R', b',', b'\r', b'F',
                ];
                let b = if x % 3 == 0 {
                    x as u8
                } else {
                    pick[(x >> 8) as usize % pick.len()]
                };
                bytes.push(b);
            }
            assert_chunking_invariant(protocol, &DecoderConfig::default(), &bytes, "random");
        }
    }
}
