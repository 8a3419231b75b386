//! The gold-card wire constants and item codes every part of the protocol shares.

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = [0xAA, 0x55];
/// The only protocol version there is.
pub const VERSION: u8 = 0x01;
/// Largest payload a frame may declare.
pub const MAX_PAYLOAD: usize = 1024;
/// Magic, version, type, length, sequence.
pub const HEADER_LEN: usize = 8;
pub const CRC_LEN: usize = 2;

/// Frame types.
pub const TYPE_RESULT: u8 = 0x01;
pub const TYPE_HEARTBEAT: u8 = 0x02;
pub const TYPE_DEVICE_INFO: u8 = 0x03;
/// Host to reader: acknowledgement of a result frame.
pub const TYPE_ACK: u8 = 0x81;

/// Item code → canonical analyte (the protocol's table of item codes).
const ITEMS: [(u16, &str); 8] = [
    (0x0101, "clenbuterol"),
    (0x0102, "ractopamine"),
    (0x0103, "salbutamol"),
    (0x0201, "chloramphenicol"),
    (0x0202, "malachite_green"),
    (0x0203, "nitrofuran_aoz"),
    (0x0204, "enrofloxacin"),
    (0x0301, "op_carbamate"),
];

/// The canonical analyte of an item code, if the document lists it.
pub fn item_analyte(code: u16) -> Option<&'static str> {
    ITEMS.iter().find(|(c, _)| *c == code).map(|(_, a)| *a)
}

/// `0x0101` form of an item code: how unknown items are named (`unknown:0x0105`).
pub fn item_code_text(code: u16) -> crate::reading::Text {
    compact_str::format_compact!("0x{code:04X}")
}
