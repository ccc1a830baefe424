//! Netlink `sock_diag`: lists the listening TCP sockets (IPv4 and IPv6) of vigil's own network
//! namespace, with each one's accept-queue length and capacity.
//!
//! Reading `/proc/<pid>/net/tcp` makes the kernel walk its whole established-connection hash
//! table, several milliseconds per file on a large host. An `inet_diag_req_v2` dump request
//! filtered to `TCPF_LISTEN` walks only the listening hash, and for listeners it reports what
//! `/proc` cannot: `idiag_rqueue` is the current accept-queue length and `idiag_wqueue` the
//! backlog given to `listen()` (capped by `net.core.somaxconn`). A netlink socket only sees the
//! namespace it was created in, so this lists the sockets of vigil's own namespace; in an ECS
//! `awsvpc` task every container shares that namespace.
//!
//! [`encode_request`] and [`parse_dump`] are pure and work on byte slices, tested with literal
//! captures. [`SockDiag`] does the I/O: one socket and one receive buffer reused across ticks,
//! a receive timeout on every call, a bounded number of datagrams per dump and a cap on the
//! listeners kept. Every failure is a typed [`SockDiagError`]; after one the socket is closed
//! and the next call opens a fresh one, so no reply of an abandoned dump is ever mistaken for a
//! new one.
//!
//! The structures are read in host byte order, except ports and addresses, which the kernel
//! sends in network byte order.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{self as rnet, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use thiserror::Error;

use crate::judge::sample::Listener;
use crate::sources::files::describe_io;

/// At most this many listeners are kept from one listing; the rest are counted and dropped.
pub const MAX_LISTENERS: usize = 256;

/// How long one send or receive may wait. The kernel builds each part of a dump while the
/// caller sends or receives, so a healthy dump never waits at all.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(100);

/// At most this many datagrams are read for one address family's dump (some 16,000 listeners
/// in full datagrams, at about 124 bytes per socket); a longer dump is abandoned as an error.
pub const MAX_DATAGRAMS: usize = 64;

/// The receive buffer. The kernel sizes each part of a dump to at most the largest receive
/// buffer it has seen on the socket, and never above 32 KiB, so one datagram always fits.
const BUFFER_BYTES: usize = 32 * 1024;

/// `struct nlmsghdr`: length, type, flags, sequence number, port id.
const NLMSG_HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, padding, states, socket id.
const REQUEST_BODY_LEN: usize = 56;
/// `struct inet_diag_msg` without its trailing attributes.
const DIAG_MSG_LEN: usize = 72;
/// The length of a request: one header and one `inet_diag_req_v2`.
pub const REQUEST_LEN: usize = NLMSG_HEADER_LEN + REQUEST_BODY_LEN;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// `SOCK_DIAG_BY_FAMILY`, the message type of requests and of each socket in the reply.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IPPROTO_TCP: u8 = 6;
/// `TCP_LISTEN` in the kernel's TCP state numbering.
const TCP_LISTEN: u8 = 10;
const TCPF_LISTEN: u32 = 1 << TCP_LISTEN;

/// The address families a dump can ask for; the kernel answers one family per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The `AF_INET` or `AF_INET6` number.
    fn number(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }
}

/// Where a dump stands after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The dump goes on in the next datagram.
    More,
    /// The kernel sent `NLMSG_DONE` (or acknowledged the request): the listing is complete.
    Done,
}

/// Why a reply could not be understood, or the kernel's own refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("netlink message length {length} does not fit the {left} bytes left")]
    BadLength { length: u32, left: usize },
    #[error("the kernel refused the request: {}", describe_errno(*.0))]
    Refused(i32),
    #[error("the kernel dropped part of the reply (overrun)")]
    Overrun,
}

/// Why listing the listeners failed; the message names the step.
#[derive(Debug, Error)]
pub enum SockDiagError {
    #[error("open sock_diag socket: {}", describe_io(.0))]
    Open(io::Error),
    #[error("send sock_diag request: {}", describe_io(.0))]
    Send(io::Error),
    /// Includes the receive timeout (`EAGAIN`).
    #[error("receive sock_diag reply: {}", describe_io(.0))]
    Receive(io::Error),
    #[error("receive sock_diag reply: a datagram of {0} bytes does not fit the buffer")]
    Oversized(usize),
    #[error("sock_diag dump did not finish within {MAX_DATAGRAMS} datagrams")]
    Unfinished,
    #[error("sock_diag reply: {0}")]
    Parse(#[from] ParseError),
}

fn describe_errno(errno: i32) -> String {
    describe_io(&io::Error::from_raw_os_error(errno))
}

// ---------------------------------------------------------------------------------------------
// Pure encoding and parsing.
// ---------------------------------------------------------------------------------------------

/// The dump request for the listening TCP sockets of one address family: a `nlmsghdr` of type
/// `SOCK_DIAG_BY_FAMILY` with `NLM_F_REQUEST | NLM_F_DUMP` and sequence number `seq`, then an
/// `inet_diag_req_v2` for TCP with only `TCPF_LISTEN` in its state mask, no extensions and an
/// empty socket id (every port, every address).
pub fn encode_request(family: Family, seq: u32) -> [u8; REQUEST_LEN] {
    let mut request = [0u8; REQUEST_LEN];
    request[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request[8..12].copy_from_slice(&seq.to_ne_bytes());
    // The port id stays 0: the kernel fills in the sender's.
    let body = &mut request[NLMSG_HEADER_LEN..];
    body[0] = family.number();
    body[1] = IPPROTO_TCP;
    body[4..8].copy_from_slice(&TCPF_LISTEN.to_ne_bytes());
    request
}

/// Appends the listeners in one datagram of a dump reply to `out`.
///
/// Messages whose sequence number is not `seq` belong to another request and are skipped, as
/// are `NLMSG_NOOP` and message types this module does not know. A socket message for a state
/// other than LISTEN is skipped too (the request asks for LISTEN only). Returns
/// [`Progress::Done`] at `NLMSG_DONE` or an acknowledgement, [`Progress::More`] when the
/// datagram ends without one. `NLMSG_ERROR` with an error code, a `NLMSG_DONE` that carries
/// one, an overrun, or a length that does not fit is an error; listeners appended before it
/// stay in `out`.
pub fn parse_dump(bytes: &[u8], seq: u32, out: &mut Vec<Listener>) -> Result<Progress, ParseError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < NLMSG_HEADER_LEN {
            return Err(ParseError::Truncated("netlink message header"));
        }
        let length = u32_at(rest, 0);
        let kind = u16_at(rest, 4);
        let message_seq = u32_at(rest, 8);
        let fits = usize::try_from(length).is_ok_and(|len| (NLMSG_HEADER_LEN..=rest.len()).contains(&len));
        if !fits {
            return Err(ParseError::BadLength { length, left: rest.len() });
        }
        let message = &rest[..length as usize];
        let payload = &message[NLMSG_HEADER_LEN..];
        // Messages start on 4-byte boundaries; the last one may lack its padding.
        let next = (length as usize).next_multiple_of(4).min(rest.len());
        rest = &rest[next..];

        if message_seq != seq {
            continue;
        }
        match kind {
            SOCK_DIAG_BY_FAMILY => {
                if payload.len() < DIAG_MSG_LEN {
                    return Err(ParseError::Truncated("inet_diag_msg"));
                }
                if payload[1] != TCP_LISTEN {
                    continue;
                }
                out.push(Listener {
                    port: u16::from_be_bytes([payload[4], payload[5]]),
                    queue: u32_at(payload, 56),
                    backlog: u32_at(payload, 60),
                });
            }
            NLMSG_DONE => {
                // The payload, when present, is the dump's final error code (0 on success).
                if payload.len() >= 4 {
                    let code = i32_at(payload, 0);
                    if code < 0 {
                        return Err(ParseError::Refused(code.saturating_neg()));
                    }
                }
                return Ok(Progress::Done);
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(ParseError::Truncated("netlink error message"));
                }
                return match i32_at(payload, 0) {
                    0 => Ok(Progress::Done),
                    code => Err(ParseError::Refused(code.saturating_neg())),
                };
            }
            NLMSG_OVERRUN => return Err(ParseError::Overrun),
            NLMSG_NOOP => {}
            // Types a newer kernel might add carry nothing this module lists.
            _ => {}
        }
    }
    Ok(Progress::More)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    u32_at(bytes, at) as i32
}

// ---------------------------------------------------------------------------------------------
// The socket.
// ---------------------------------------------------------------------------------------------

/// A `NETLINK_SOCK_DIAG` socket and its receive buffer, both kept across ticks. Creating one
/// does no I/O: the socket is opened on first use, and again after a failure.
#[derive(Debug)]
pub struct SockDiag {
    socket: Option<OwnedFd>,
    buffer: Vec<u8>,
    seq: u32,
    /// [`MAX_LISTENERS`], lowered in tests.
    limit: usize,
}

impl Default for SockDiag {
    fn default() -> Self {
        SockDiag::new()
    }
}

impl SockDiag {
    pub fn new() -> Self {
        SockDiag { socket: None, buffer: Vec::new(), seq: 0, limit: MAX_LISTENERS }
    }

    /// A `SockDiag` whose next request goes to `socket` instead: given anything but a netlink
    /// socket, it fails the way a broken `sock_diag` would.
    #[cfg(test)]
    pub(crate) fn with_socket(socket: OwnedFd) -> Self {
        SockDiag { socket: Some(socket), ..SockDiag::new() }
    }

    /// Replaces `out` with the listening TCP sockets of vigil's network namespace, IPv4 first,
    /// then IPv6, at most [`MAX_LISTENERS`] of them. Returns how many more there were, which
    /// were left out. On an error `out` is left empty.
    pub fn list_listeners(&mut self, out: &mut Vec<Listener>) -> Result<usize, SockDiagError> {
        out.clear();
        // The socket is put back only after a complete listing: one with part of a reply still
        // queued is closed, and the next call opens a fresh one.
        let socket = match self.socket.take() {
            Some(socket) => socket,
            None => open()?,
        };
        if self.buffer.len() != BUFFER_BYTES {
            self.buffer = vec![0; BUFFER_BYTES];
        }
        let mut dropped = 0;
        for family in Family::ALL {
            self.seq = self.seq.wrapping_add(1);
            match dump(&socket, &mut self.buffer, self.seq, family, self.limit, out) {
                Ok(more) => dropped += more,
                Err(error) => {
                    out.clear();
                    return Err(error);
                }
            }
        }
        self.socket = Some(socket);
        Ok(dropped)
    }
}

/// Sends one family's request with sequence number `seq` and reads its reply up to
/// `NLMSG_DONE`, keeping at most `limit` listeners in `out`. Returns how many were left out.
fn dump(
    socket: &OwnedFd,
    buffer: &mut [u8],
    seq: u32,
    family: Family,
    limit: usize,
    out: &mut Vec<Listener>,
) -> Result<usize, SockDiagError> {
    let kernel = SocketAddrNetlink::new(0, 0);
    rnet::sendto(socket, &encode_request(family, seq), SendFlags::empty(), &kernel)
        .map_err(|errno| SockDiagError::Send(errno.into()))?;

    let mut dropped = 0;
    for _ in 0..MAX_DATAGRAMS {
        // `TRUNC` makes the call return the datagram's full length even when it did not fit,
        // so a cut datagram is seen rather than parsed in part.
        let (_, length, sender) = rnet::recvfrom(socket, &mut *buffer, RecvFlags::TRUNC)
            .map_err(|errno| SockDiagError::Receive(errno.into()))?;
        if length > buffer.len() {
            return Err(SockDiagError::Oversized(length));
        }
        // Only the kernel (port id 0) answers requests; anything else is not a reply.
        let from_kernel = sender
            .and_then(|address| SocketAddrNetlink::try_from(address).ok())
            .is_some_and(|address| address.pid() == 0);
        if !from_kernel {
            continue;
        }
        let progress = parse_dump(&buffer[..length], seq, out)?;
        if out.len() > limit {
            dropped += out.len() - limit;
            out.truncate(limit);
        }
        if progress == Progress::Done {
            return Ok(dropped);
        }
    }
    Err(SockDiagError::Unfinished)
}

/// Opens a close-on-exec `NETLINK_SOCK_DIAG` socket with send and receive timeouts.
fn open() -> Result<OwnedFd, SockDiagError> {
    let socket = rnet::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .map_err(|errno| SockDiagError::Open(errno.into()))?;
    for timeout in [Timeout::Recv, Timeout::Send] {
        sockopt::set_socket_timeout(&socket, timeout, Some(RECV_TIMEOUT))
            .map_err(|errno| SockDiagError::Open(errno.into()))?;
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Turns a hex dump (whitespace ignored) into bytes.
    fn bytes(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// Parses one datagram into a fresh list: the data-driven check of every case below.
    fn check(datagram: &[u8], seq: u32) -> (Result<Progress, ParseError>, Vec<Listener>) {
        let mut out = Vec::new();
        let progress = parse_dump(datagram, seq, &mut out);
        (progress, out)
    }

    fn listener(port: u16, queue: u32, backlog: u32) -> Listener {
        Listener { port, queue, backlog }
    }

    // The captures below were taken on the project's build machine (x86_64, kernel 6.18) by
    // sending `encode_request` from a `NETLINK_SOCK_DIAG` socket inside a fresh network
    // namespace, next to a python3 process whose listeners `ss -ltn` showed the same way.

    /// The request for IPv4 with sequence number 1, as sent.
    const REQUEST_V4: &str = "48000000 1400 0103 01000000 00000000
        02 06 00 00 00040000
        0000 0000 00000000000000000000000000000000 00000000000000000000000000000000 00000000 0000000000000000";

    /// The reply to `REQUEST_V4` next to `127.0.0.1:34649` with `listen(4)` and two connections
    /// it had not accepted (`ss`: Recv-Q 2, Send-Q 4): one socket message with its attributes,
    /// then `NLMSG_DONE` in a second datagram.
    const REPLY_V4: &str = "7c000000 1400 0200 01000000 47020000
        02 0a 00 00 8759 0000 7f000001000000000000000000000000 00000000000000000000000000000000
        00000000 0110000000000000 00000000 02000000 04000000 00000000 4e590200
        0500 0800 00000000 0800 0f00 00000000 0c00 1500 0100000000000000 0600 1600 52000000";
    const DONE_V4: &str = "14000000 0300 0200 01000000 47020000 00000000";

    /// The reply to the IPv6 request (sequence number 2) next to `[::1]:37169` with
    /// `listen(16)` and one pending connection; it carries one more attribute (`SKV6ONLY`).
    const REPLY_V6: &str = "84000000 1400 0200 02000000 47020000
        0a 0a 00 00 9131 0000 00000000000000000000000000000001 00000000000000000000000000000000
        00000000 0210000000000000 00000000 01000000 10000000 00000000 4f590200
        0500 0800 00000000 0500 0b00 01000000 0800 0f00 00000000 0c00 1500 0100000000000000
        0600 1600 12000000";

    /// Three IPv4 listeners in one datagram: `listen(4096)` (capped at `somaxconn`, 4096 here),
    /// `listen(4)` with one pending connection, and `listen(128)`.
    const REPLY_THREE: &str = "7c000000 1400 0200 01000000 6f040000
        02 0a 00 00 e1d1 0000 7f000001000000000000000000000000 00000000000000000000000000000000
        00000000 0500000000000000 00000000 00000000 00100000 00000000 195b0200
        0500 0800 00000000 0800 0f00 00000000 0c00 1500 0100000000000000 0600 1600 52000000
        7c000000 1400 0200 01000000 6f040000
        02 0a 00 00 e187 0000 7f000001000000000000000000000000 00000000000000000000000000000000
        00000000 0600000000000000 00000000 01000000 04000000 00000000 175b0200
        0500 0800 00000000 0800 0f00 00000000 0c00 1500 0100000000000000 0600 1600 52000000
        7c000000 1400 0200 01000000 6f040000
        02 0a 00 00 af2b 0000 7f000001000000000000000000000000 00000000000000000000000000000000
        00000000 0700000000000000 00000000 00000000 80000000 00000000 185b0200
        0500 0800 00000000 0800 0f00 00000000 0c00 1500 0100000000000000 0600 1600 52000000";

    /// The kernel's answer to a request for address family 0, which has no `sock_diag`
    /// handler: `NLMSG_ERROR` with `-ENOENT`, then the request echoed back.
    const ERROR_ENOENT: &str = "5c000000 0200 0000 03000000 6f040000 feffffff
        48000000 1400 0103 03000000 00000000 00 06 00 00 00040000
        0000 0000 00000000000000000000000000000000 00000000000000000000000000000000 00000000 0000000000000000";

    #[cfg(target_endian = "little")]
    #[test]
    fn request_matches_what_the_kernel_accepted() {
        assert_eq!(encode_request(Family::V4, 1).as_slice(), bytes(REQUEST_V4));
        let v6 = encode_request(Family::V6, 2);
        assert_eq!((v6[8], v6[16], v6[17]), (2, 10, IPPROTO_TCP));
        assert_eq!(v6[20..], bytes(REQUEST_V4)[20..], "the same state mask and an empty socket id");
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn captured_replies() {
        assert_eq!(check(&bytes(REPLY_V4), 1), (Ok(Progress::More), vec![listener(34649, 2, 4)]));
        assert_eq!(check(&bytes(DONE_V4), 1), (Ok(Progress::Done), vec![]));
        assert_eq!(check(&bytes(REPLY_V6), 2), (Ok(Progress::More), vec![listener(37169, 1, 16)]));
        assert_eq!(
            check(&bytes(REPLY_THREE), 1),
            (
                Ok(Progress::More),
                vec![listener(57809, 0, 4096), listener(57735, 1, 4), listener(44843, 0, 128)]
            )
        );
        let (progress, listeners) = check(&bytes(ERROR_ENOENT), 3);
        assert_eq!((progress, listeners), (Err(ParseError::Refused(2)), vec![]));
        assert_eq!(
            ParseError::Refused(2).to_string(),
            "the kernel refused the request: no such file or directory"
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_done_with_the_most_negative_code_is_an_error_not_an_overflow() {
        // Found by the sockdiag fuzz target: `-i32::MIN` overflowed.
        let mut done = bytes(DONE_V4);
        let code = NLMSG_HEADER_LEN;
        done.truncate(code);
        done.extend(i32::MIN.to_ne_bytes());
        let len = done.len() as u32;
        done[..4].copy_from_slice(&len.to_ne_bytes());
        let seq = u32::from_ne_bytes([done[8], done[9], done[10], done[11]]);
        let (progress, _) = check(&done, seq);
        assert_eq!(progress, Err(ParseError::Refused(i32::MAX)));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn listeners_and_done_in_one_datagram() {
        let mut datagram = bytes(REPLY_THREE);
        datagram.extend(bytes(DONE_V4));
        let (progress, listeners) = check(&datagram, 1);
        assert_eq!(progress, Ok(Progress::Done));
        assert_eq!(listeners.len(), 3);
        // Whatever follows `NLMSG_DONE` is not read.
        datagram.extend(bytes(REPLY_V4));
        assert_eq!(check(&datagram, 1).1.len(), 3);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn messages_of_another_request_are_skipped() {
        // A reply left over from an abandoned dump (sequence number 1) in front of the current
        // one (sequence number 2): neither its socket nor its `NLMSG_DONE` count.
        let mut datagram = bytes(REPLY_V4);
        datagram.extend(bytes(DONE_V4));
        datagram.extend(bytes(REPLY_V6));
        assert_eq!(check(&datagram, 2), (Ok(Progress::More), vec![listener(37169, 1, 16)]));
        assert_eq!(check(&bytes(ERROR_ENOENT), 4), (Ok(Progress::More), vec![]));
    }

    /// A message with the given type and payload, padded to 4 bytes, in host byte order.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(((NLMSG_HEADER_LEN + payload.len()) as u32).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(0x2u16.to_ne_bytes());
        out.extend(seq.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    /// An `inet_diag_msg` for one socket, without attributes.
    fn diag(state: u8, port: u16, rqueue: u32, wqueue: u32) -> Vec<u8> {
        let mut payload = vec![0u8; DIAG_MSG_LEN];
        payload[0] = 2;
        payload[1] = state;
        payload[4..6].copy_from_slice(&port.to_be_bytes());
        payload[56..60].copy_from_slice(&rqueue.to_ne_bytes());
        payload[60..64].copy_from_slice(&wqueue.to_ne_bytes());
        payload
    }

    /// A named datagram, and what parsing it with sequence number 9 gives.
    type Case = (&'static str, Vec<u8>, Result<Progress, ParseError>, Vec<Listener>);

    #[test]
    fn hand_built_messages() {
        let listen = message(SOCK_DIAG_BY_FAMILY, 9, &diag(TCP_LISTEN, 8080, 3, 511));
        let done = message(NLMSG_DONE, 9, &0i32.to_ne_bytes());
        let cases: Vec<Case> = vec![
            ("an empty datagram", vec![], Ok(Progress::More), vec![]),
            ("one listener", listen.clone(), Ok(Progress::More), vec![listener(8080, 3, 511)]),
            ("a bare NLMSG_DONE", message(NLMSG_DONE, 9, &[]), Ok(Progress::Done), vec![]),
            ("an acknowledgement", message(NLMSG_ERROR, 9, &0i32.to_ne_bytes()), Ok(Progress::Done), vec![]),
            (
                "an established socket",
                message(SOCK_DIAG_BY_FAMILY, 9, &diag(1, 443, 0, 0)),
                Ok(Progress::More),
                vec![],
            ),
            (
                "NLMSG_NOOP and an unknown type",
                [message(NLMSG_NOOP, 9, &[]), message(99, 9, &[1, 2, 3])].concat(),
                Ok(Progress::More),
                vec![],
            ),
            (
                "a dump that failed part-way",
                [listen.clone(), message(NLMSG_DONE, 9, &(-105i32).to_ne_bytes())].concat(),
                Err(ParseError::Refused(105)),
                vec![listener(8080, 3, 511)],
            ),
            ("an overrun", message(NLMSG_OVERRUN, 9, &[]), Err(ParseError::Overrun), vec![]),
            (
                "a cut error message",
                message(NLMSG_ERROR, 9, &[0xff, 0xff]),
                Err(ParseError::Truncated("netlink error message")),
                vec![],
            ),
            (
                "a cut socket message",
                message(SOCK_DIAG_BY_FAMILY, 9, &diag(TCP_LISTEN, 1, 0, 0)[..40]),
                Err(ParseError::Truncated("inet_diag_msg")),
                vec![],
            ),
            (
                "a cut header after a listener",
                [listen.clone(), done[..10].to_vec()].concat(),
                Err(ParseError::Truncated("netlink message header")),
                vec![listener(8080, 3, 511)],
            ),
            (
                "a message longer than the datagram",
                listen[..60].to_vec(),
                Err(ParseError::BadLength { length: 88, left: 60 }),
                vec![],
            ),
            (
                "a length shorter than a header",
                [4u32.to_ne_bytes(), [0; 4], [0; 4], [0; 4]].concat(),
                Err(ParseError::BadLength { length: 4, left: 16 }),
                vec![],
            ),
            (
                "two listeners then NLMSG_DONE",
                [listen.clone(), listen.clone(), done.clone()].concat(),
                Ok(Progress::Done),
                vec![listener(8080, 3, 511); 2],
            ),
        ];
        for (name, datagram, progress, listeners) in cases {
            assert_eq!(check(&datagram, 9), (progress, listeners), "{name}");
        }
    }

    #[test]
    fn error_messages_name_the_step() {
        let timeout = SockDiagError::Receive(io::Error::from(io::ErrorKind::WouldBlock));
        assert!(timeout.to_string().starts_with("receive sock_diag reply: "), "{timeout}");
        assert_eq!(
            SockDiagError::from(ParseError::Truncated("inet_diag_msg")).to_string(),
            "sock_diag reply: truncated inet_diag_msg"
        );
        assert_eq!(
            SockDiagError::Open(io::Error::from(io::ErrorKind::PermissionDenied)).to_string(),
            "open sock_diag socket: permission denied"
        );
    }

    /// A connection the listener has not accepted: complete on the client's side, waiting in
    /// the listener's accept queue.
    fn pending(listener: &TcpListener) -> TcpStream {
        TcpStream::connect(listener.local_addr().unwrap()).unwrap()
    }

    #[test]
    fn lists_this_process_listeners_with_queue_and_backlog() {
        let mut diag = SockDiag::new();
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let _connections = [pending(&v4), pending(&v4)];
        let port = v4.local_addr().unwrap().port();
        let mut listeners = Vec::new();
        // The same socket and buffer serve every call.
        for _ in 0..3 {
            let dropped = diag.list_listeners(&mut listeners).unwrap();
            assert_eq!(dropped, 0);
            let found = listeners.iter().find(|l| l.port == port).copied();
            // The standard library listens with a backlog of 128 (capped by `somaxconn`).
            assert!(matches!(found, Some(Listener { queue: 2, backlog, .. }) if backlog > 0), "{found:?}");
        }
        // IPv6 listeners come from the second dump, where the kernel has IPv6.
        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            let _connection = pending(&v6);
            let port = v6.local_addr().unwrap().port();
            diag.list_listeners(&mut listeners).unwrap();
            let found = listeners.iter().find(|l| l.port == port).copied();
            assert!(matches!(found, Some(Listener { queue: 1, backlog, .. }) if backlog > 0), "{found:?}");
        }
    }

    #[test]
    fn a_failed_listing_closes_the_socket_and_the_next_opens_a_fresh_one() {
        // A UDP socket cannot send to a netlink address: the request fails as a broken
        // `sock_diag` would.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut diag = SockDiag::with_socket(udp.into());
        let _listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut listeners = vec![listener(1, 2, 3)];
        let error = diag.list_listeners(&mut listeners).unwrap_err();
        assert!(matches!(error, SockDiagError::Send(_)), "{error}");
        assert_eq!(listeners, []);
        diag.list_listeners(&mut listeners).unwrap();
        assert!(!listeners.is_empty());
    }

    #[test]
    fn keeps_at_most_the_limit_and_counts_the_rest() {
        let _opened = [TcpListener::bind("127.0.0.1:0").unwrap(), TcpListener::bind("127.0.0.1:0").unwrap()];
        let mut diag = SockDiag { limit: 1, ..SockDiag::new() };
        let mut listeners = Vec::new();
        let dropped = diag.list_listeners(&mut listeners).unwrap();
        assert_eq!(listeners.len(), 1);
        // Other tests may listen at the same time: at least this test's second one is dropped.
        assert!(dropped >= 1, "{dropped}");
    }
}
