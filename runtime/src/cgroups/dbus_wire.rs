//! Just enough of the D-Bus wire protocol to call systemd's manager on
//! its private socket: EXTERNAL authentication, method calls whose
//! arguments are strings, booleans, u64, arrays of u32 and the `a(sv)`
//! property lists of StartTransientUnit, and replies read as success or
//! the error's name and message.
//!
//! Why not a crate: libdbus (the `dbus` crate) links libsystemd and its
//! compression and crypto libraries into every runtime start (1.4 MB more
//! peak RSS for each `run`, measured), and zbus brings an async stack;
//! the runtime needs three method calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A value of one of the types the calls here need.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U64(u64),
    U32Array(Vec<u32>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::Bool(_) => "b",
            Value::U64(_) => "t",
            Value::U32Array(_) => "au",
        }
    }
}

/// One argument of a method call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    /// `a(sv)`: named values.
    Props(Vec<(String, Value)>),
    /// `a(sa(sv))`: systemd's auxiliary units (always empty here).
    AuxUnits,
}

impl Arg {
    fn signature(&self) -> &'static str {
        match self {
            Arg::Str(_) => "s",
            Arg::Props(_) => "a(sv)",
            Arg::AuxUnits => "a(sa(sv))",
        }
    }
}

/// Little-endian marshalling into a buffer whose offset 0 is 8-aligned in
/// the message (the header and the body both start so).
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    /// An array: its length, padding to the element alignment (not
    /// counted), the elements written by `body`.
    fn array(&mut self, elem_align: usize, body: impl FnOnce(&mut Writer)) {
        self.pad(4);
        let len_at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        self.pad(elem_align);
        let start = self.0.len();
        body(self);
        let len = (self.0.len() - start) as u32;
        self.0[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn variant(&mut self, v: &Value) {
        self.signature(v.signature());
        match v {
            Value::Str(s) => self.string(s),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U64(n) => self.u64(*n),
            Value::U32Array(a) => self.array(4, |w| a.iter().for_each(|n| w.u32(*n))),
        }
    }
    fn arg(&mut self, a: &Arg) {
        match a {
            Arg::Str(s) => self.string(s),
            Arg::Props(props) => self.array(8, |w| {
                for (name, value) in props {
                    w.pad(8);
                    w.string(name);
                    w.variant(value);
                }
            }),
            Arg::AuxUnits => self.array(8, |_| {}),
        }
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

/// The bytes of a method call with serial `serial`.
pub fn method_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Arg],
) -> Vec<u8> {
    let mut body = Writer::default();
    args.iter().for_each(|a| body.arg(a));
    let sig: String = args.iter().map(Arg::signature).collect();

    let mut m = Writer::default();
    m.u8(b'l');
    m.u8(METHOD_CALL);
    m.u8(0);
    m.u8(1);
    m.u32(body.0.len() as u32);
    m.u32(serial);
    m.array(8, |w| {
        let field = |w: &mut Writer, code: u8, sig: &str, put: &dyn Fn(&mut Writer)| {
            w.pad(8);
            w.u8(code);
            w.signature(sig);
            put(w);
        };
        field(w, 1, "o", &|w| w.string(path));
        field(w, 2, "s", &|w| w.string(iface));
        field(w, 3, "s", &|w| w.string(member));
        field(w, 6, "s", &|w| w.string(dest));
        if !sig.is_empty() {
            field(w, 8, "g", &|w| w.signature(&sig));
        }
    });
    m.pad(8);
    m.0.extend_from_slice(&body.0);
    m.0
}

/// What a reply said: nothing (success), or the error.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub error_message: Option<String>,
}

/// Reads little-endian values at offsets relative to the message start.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn align(&mut self, a: usize) {
        self.pos = self.pos.div_ceil(a) * a;
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.align(4);
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Some(s)
    }
    fn signature(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Some(s)
    }
}

/// Parses a whole little-endian message (its header fields and, for an
/// error, the message string that starts its body).
pub fn parse_reply(msg: &[u8]) -> Option<Reply> {
    if msg.first() != Some(&b'l') {
        return None; // big-endian peers are not expected from systemd here
    }
    let mut r = Reader { buf: msg, pos: 1 };
    let kind = r.u8()?;
    r.pos = 12;
    let fields_len = r.u32()? as usize;
    let fields_end = r.pos + fields_len;
    let mut reply = Reply {
        kind,
        reply_serial: None,
        error_name: None,
        error_message: None,
    };
    let mut signature = String::new();
    while r.pos < fields_end {
        r.align(8);
        let code = r.u8()?;
        let sig = r.signature()?;
        match (code, sig.as_str()) {
            (4, "s") => reply.error_name = r.string(),
            (5, "u") => reply.reply_serial = r.u32(),
            (8, "g") => signature = r.signature()?,
            (_, "s" | "o") => drop(r.string()?),
            (_, "u") => drop(r.u32()?),
            (_, "g") => drop(r.signature()?),
            _ => return None,
        }
    }
    r.pos = fields_end;
    r.align(8);
    if kind == ERROR && signature.starts_with('s') {
        reply.error_message = r.string();
    }
    Some(reply)
}

/// A connection to a D-Bus peer (systemd's private socket: no bus, no
/// Hello), authenticated as our uid.
pub struct Connection {
    stream: BufReader<UnixStream>,
    serial: u32,
}

impl Connection {
    pub fn open(path: &str, timeout: Duration) -> std::io::Result<Connection> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut stream = BufReader::new(stream);
        let uid = nix::unistd::getuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        stream
            .get_mut()
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let mut line = String::new();
        stream.read_line(&mut line)?;
        if !line.starts_with("OK ") {
            return Err(std::io::Error::other(format!(
                "D-Bus authentication refused: {}",
                line.trim()
            )));
        }
        stream.get_mut().write_all(b"BEGIN\r\n")?;
        Ok(Connection { stream, serial: 0 })
    }

    /// Calls `member` and waits for its reply: Ok on success, the error
    /// (name: message) otherwise.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Arg],
    ) -> std::io::Result<Result<(), String>> {
        self.serial += 1;
        let serial = self.serial;
        let msg = method_call(serial, dest, path, iface, member, args);
        self.stream.get_mut().write_all(&msg)?;
        loop {
            let mut fixed = [0u8; 16];
            self.stream.read_exact(&mut fixed)?;
            let body_len = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
            let fields_len =
                u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
            let total = (16 + fields_len).div_ceil(8) * 8 + body_len;
            if total > 1 << 24 {
                return Err(std::io::Error::other("D-Bus message too large"));
            }
            let mut msg = fixed.to_vec();
            msg.resize(total, 0);
            self.stream.read_exact(&mut msg[16..])?;
            let Some(reply) = parse_reply(&msg) else {
                return Err(std::io::Error::other("unreadable D-Bus message"));
            };
            if reply.reply_serial != Some(serial) {
                continue; // a signal or another call's reply
            }
            return Ok(match reply.kind {
                METHOD_RETURN => Ok(()),
                _ => Err(format!(
                    "{}: {}",
                    reply.error_name.unwrap_or_default(),
                    reply.error_message.unwrap_or_default()
                )),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_laid_out_as_the_spec_says() {
        let m = method_call(7, "d", "/p", "i", "M", &[Arg::Str("x".into())]);
        let want: Vec<u8> = [
            // l, METHOD_CALL, flags, version; body length 6; serial 7
            &b"l\x01\x00\x01"[..],
            &6u32.to_le_bytes(),
            &7u32.to_le_bytes(),
            // header fields array: 71 bytes, each field 8-aligned
            &71u32.to_le_bytes(),
            // PATH "o" "/p"
            b"\x01\x01o\x00",
            &2u32.to_le_bytes(),
            b"/p\x00",
            b"\x00\x00\x00\x00\x00", // pad to 8
            // INTERFACE "s" "i"
            b"\x02\x01s\x00",
            &1u32.to_le_bytes(),
            b"i\x00",
            b"\x00\x00\x00\x00\x00\x00",
            // MEMBER "s" "M"
            b"\x03\x01s\x00",
            &1u32.to_le_bytes(),
            b"M\x00",
            b"\x00\x00\x00\x00\x00\x00",
            // DESTINATION "s" "d"
            b"\x06\x01s\x00",
            &1u32.to_le_bytes(),
            b"d\x00",
            b"\x00\x00\x00\x00\x00\x00",
            // SIGNATURE "g" "s"
            b"\x08\x01g\x00\x01s\x00",
            b"\x00", // header padded to 8
            // body: "x"
            &1u32.to_le_bytes(),
            b"x\x00",
        ]
        .concat();
        assert_eq!(m, want);
    }

    #[test]
    fn property_lists_align_their_structs_and_variants() {
        let mut w = Writer::default();
        w.arg(&Arg::Props(vec![
            ("A".into(), Value::Bool(true)),
            ("B".into(), Value::U64(5)),
            ("C".into(), Value::U32Array(vec![9])),
        ]));
        let want: Vec<u8> = [
            &60u32.to_le_bytes()[..], // array length (after the padding)
            b"\x00\x00\x00\x00",      // pad to 8 for the first struct
            // ("A", b true): the u32 of the bool 4-aligned
            &1u32.to_le_bytes(),
            b"A\x00",
            b"\x01b\x00",
            b"\x00\x00\x00",
            &1u32.to_le_bytes(),
            // ("B", t 5): the u64 8-aligned
            &1u32.to_le_bytes(),
            b"B\x00",
            b"\x01t\x00",
            b"\x00\x00\x00\x00\x00\x00\x00",
            &5u64.to_le_bytes(),
            // ("C", au [9])
            &1u32.to_le_bytes(),
            b"C\x00",
            b"\x02au\x00",
            b"\x00\x00",
            &4u32.to_le_bytes(),
            &9u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(w.0, want);
    }

    #[test]
    fn an_error_reply_gives_its_name_and_message() {
        // A reply as a peer would write it: ERROR, reply serial 3, the
        // error name, signature "s", body "no such unit".
        let mut body = Writer::default();
        body.string("no such unit");
        let mut m = Writer::default();
        m.u8(b'l');
        m.u8(ERROR);
        m.u8(0);
        m.u8(1);
        m.u32(body.0.len() as u32);
        m.u32(99);
        m.array(8, |w| {
            w.pad(8);
            w.u8(4);
            w.signature("s");
            w.string("org.freedesktop.systemd1.NoSuchUnit");
            w.pad(8);
            w.u8(5);
            w.signature("u");
            w.u32(3);
            w.pad(8);
            w.u8(8);
            w.signature("g");
            w.signature("s");
        });
        m.pad(8);
        m.0.extend_from_slice(&body.0);
        let r = parse_reply(&m.0).unwrap();
        assert_eq!(r.kind, ERROR);
        assert_eq!(r.reply_serial, Some(3));
        assert_eq!(
            r.error_name.as_deref(),
            Some("org.freedesktop.systemd1.NoSuchUnit")
        );
        assert_eq!(r.error_message.as_deref(), Some("no such unit"));
        assert_eq!(parse_reply(b"B\x02"), None);
    }
}
