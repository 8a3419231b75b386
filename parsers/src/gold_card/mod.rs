//! Colloidal gold card readers, binary frames, protocol `gold-card`.
//!
//! `AA 55 | version | type | length u16 | sequence u16 | payload | CRC-16/MODBUS`, all
//! little-endian. The decoder reads the reader's side of the link: it checks every frame
//! itself, drops damaged ones and resyncs from the byte after their magic (a corrupted
//! length must not swallow the good frames behind it), and takes a repeated result frame
//! (lost acknowledgement) once.

mod encode;
mod frame;
mod payload;
mod wire;

pub use encode::{
    crc16, device_info_payload, encode_ack, encode_frame, heartbeat_payload, ResultPayload,
};
pub use frame::GoldCardDecoder;
pub use payload::PayloadError;
pub use wire::{
    item_analyte, item_code_text, CRC_LEN, HEADER_LEN, MAGIC, MAX_PAYLOAD, TYPE_ACK,
    TYPE_DEVICE_INFO, TYPE_HEARTBEAT, TYPE_RESULT, VERSION,
};
