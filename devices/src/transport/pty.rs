//! Pseudo-terminal pairs: a real serial port for simulators and tests, no tool needed.

use super::stream::{HangUp, PortStream};
use serialport::{SerialPort, TTYPort};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The instrument's end of a pty pair; the other end is a path a link opens as its port.
#[derive(Debug)]
pub struct Pty {
    master: TTYPort,
    path: PathBuf,
}

impl Pty {
    /// A new pair; the slave side is closed at once so that the link is its only user.
    pub fn open() -> io::Result<Self> {
        let (first, slave) = TTYPort::pair().map_err(io::Error::from)?;
        // `pair` opens the master without close-on-exec: a process spawned meanwhile (the
        // service under test, another simulator) would inherit it and keep the line up after
        // the simulator is gone, so that no link ever sees the cable pulled. The clone is
        // close-on-exec; the inherited-by-default descriptor is closed at once.
        let mut master = first.try_clone_native().map_err(io::Error::from)?;
        drop(first);
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| io::Error::other("pty slave has no name"))?;
        drop(slave);
        master
            .set_timeout(Duration::from_millis(20))
            .map_err(io::Error::from)?;
        Ok(Pty { master, path })
    }

    /// The path to configure as the instrument's serial port.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The master as an async stream. Until a link opens the slave, reads wait (a pty
    /// reports a hang-up while its slave is closed). Dropping the stream closes the master:
    /// the link sees the cable pulled.
    pub fn into_stream(self) -> io::Result<PortStream> {
        PortStream::spawn(Box::new(self.master) as Box<dyn SerialPort>, HangUp::Wait)
    }
}
