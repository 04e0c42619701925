//! Turning received bytes into frames and whole messages.
//!
//! The reader checks each header against the role and the limits as soon as
//! it is complete, unmasks and UTF-8-checks payload bytes as they arrive
//! (so errors surface without waiting for the rest of a frame), and hands
//! single-frame messages out without copying.

use bytes::{Buf, Bytes, BytesMut};

use super::close::CloseCode;
use super::config::Config;
use super::deflate::{self, DeflateParams, Deflater, Inflater};
use super::error::{Error, ProtocolError};
use super::frame::{FrameHeader, OpCode};
use super::mask::{apply_mask, copy_masked, rotate_key};
use super::message::{Message, Text};
use super::utf8::Utf8Validator;

/// Most payload room reserved ahead of the bytes that fill it. A frame
/// whose header is in hand gets room for all of it (never more than the
/// frame size limit, which `next` enforces) up to this much, so a
/// 64 KiB message cut across reads is copied in once instead of regrown
/// (and copied again) with every read; beyond it the buffer grows as bytes
/// arrive, so a header claiming a huge frame costs no more than this.
const FRAME_ROOM_AHEAD: usize = 64 << 10;

/// `Reader::ahead_at` when there is no note.
const NO_NOTE: usize = usize::MAX;

/// Least room [`Reader::room`] offers when no frame is in progress; the
/// room doubles while reads fill it, up to [`ROOM_MAX`], and halves while
/// they leave three quarters of it empty.
const ROOM_MIN: usize = 4 << 10;

/// Most room [`Reader::room`] offers when no frame is in progress: one
/// frame of [`FRAME_ROOM_AHEAD`] with the largest header.
const ROOM_MAX: usize = FRAME_ROOM_AHEAD + 14;

/// Most capacity a new read buffer gets beyond the bytes it holds and the
/// room asked for (an eighth of the room below that): enough that the
/// next read's cut frame fits behind the same allocation.
const ROOM_SLACK_MAX: usize = 8 << 10;

/// Frames at least this large are received into room that ends where they
/// end (see [`Reader::room`]).
const BIG_FRAME: usize = 16 << 10;

/// Room to reserve for a frame with `rest` payload bytes still to come,
/// `n` of which are in hand.
#[inline]
fn frame_room(rest: usize, n: usize) -> usize {
    rest.min(FRAME_ROOM_AHEAD + 64).max(n)
}

/// Unmasks and UTF-8-checks `f`'s payload bytes from where it stopped to the
/// end of `bytes` (the payload received so far, from its first byte).
#[inline(always)]
fn advance_frame(f: &mut InFrame, utf8: &mut Utf8Validator, bytes: &mut [u8]) -> Result<(), Error> {
    let avail = bytes.len();
    if let Some(key) = f.header.mask {
        if avail > f.unmasked {
            apply_mask(&mut bytes[f.unmasked..avail], key, f.unmasked);
            f.unmasked = avail;
        }
    }
    if f.text && avail > f.done {
        utf8.feed(&bytes[f.done..avail])
            .map_err(|_| Error::InvalidUtf8)?;
    }
    f.done = avail;
    Ok(())
}

/// Takes the whole frame that `extend` moved to `front`, unmasked and
/// checked by [`advance_frame`] (empty if there is none).
#[cold]
#[inline(never)]
fn finish_front(
    f: &mut InFrame,
    utf8: &mut Utf8Validator,
    front: &mut Option<BytesMut>,
) -> Result<BytesMut, Error> {
    let mut payload = front.take().unwrap_or_default();
    debug_assert_eq!(payload.len(), f.len(), "front holds exactly one frame");
    advance_frame(f, utf8, &mut payload)?;
    Ok(payload)
}

/// One complete unit the connection acts on.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A whole (possibly reassembled) data message.
    Message(Message),
    /// A ping and its payload.
    Ping(Bytes),
    /// A pong and its payload.
    Pong(Bytes),
    /// A close frame, with its code and reason when it carried one.
    Close(Option<(CloseCode, String)>),
}

#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    /// Payload bytes at the front of the buffer that are unmasked and
    /// UTF-8-checked.
    done: usize,
    /// Payload bytes at the front of the buffer that are unmasked (at least
    /// `done`: `extend` unmasks while it copies, `next` checks later).
    unmasked: usize,
    text: bool,
    compressed: bool,
}

impl InFrame {
    /// The payload length (`check_header` bounded it by
    /// `max_frame_size`, a `usize`).
    #[inline]
    fn len(&self) -> usize {
        self.header.len as usize
    }
}

#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    /// The message so far: raw payload, or inflated output if compressed.
    data: BytesMut,
    fragments: usize,
}

/// Incremental frame and message decoder for one direction of a connection.
#[derive(Debug)]
pub struct Reader {
    buf: BytesMut,
    frame: Option<InFrame>,
    /// A fragmented message being assembled (boxed: rare, and large).
    msg: Option<Box<Partial>>,
    utf8: Utf8Validator,
    expect_masked: bool,
    /// permessage-deflate was negotiated with these parameters; the
    /// inflater is built from them on the first compressed frame.
    deflate: Option<DeflateParams>,
    inflater: Option<Box<Inflater>>,
    /// A frame header was decoded: the bytes are frames from here on (not
    /// the handshake), so `extend` may look at headers ahead of `next`.
    framing: bool,
    /// The next frame's header starts `ahead_at` bytes into `buf` and its
    /// first `ahead_n` payload bytes were already unmasked by `extend`;
    /// [`NO_NOTE`] for no such note. (Two plain numbers rather than an
    /// `Option<(usize, usize)>`, whose payload stays uninitialized while it
    /// is `None`: the optimizer may compare that payload before the
    /// discriminant, which is harmless but makes valgrind report a jump on
    /// uninitialized memory in every host that never copies input in.)
    ahead_at: usize,
    ahead_n: usize,
    /// The current frame's payload, complete, when the next frame's header
    /// arrived before `next` took it and `buf` had no room for the next
    /// frame: it moves here and the next frame starts a buffer of its own,
    /// instead of regrowing `buf` (which would copy it).
    front: Option<BytesMut>,
    /// Every byte of `buf`'s spare capacity is initialized, up to
    /// `init_end`, which is where the spare capacity ends (see
    /// [`Reader::make_room`]).
    spare_init: bool,
    /// Bytes of room [`Reader::room`] handed out and [`Reader::commit`] may
    /// still take (0 once taken, or once anything else touched `buf`).
    offered: usize,
    /// The room offered ends where the frame in progress ends.
    offered_exact: bool,
    /// Room offered when no frame is in progress (adapts to the reads).
    room_size: usize,
    /// The address just past the last initialized byte of `buf`'s
    /// allocation (meaningful while `spare_init` holds): `make_room`
    /// zeroes whatever capacity it makes available beyond it.
    init_end: usize,
    /// Capacity `make_room` last left `buf` with (meaningful while
    /// `spare_init` holds): what a busy connection may keep.
    alloc: usize,
}

impl Reader {
    /// A reader for frames from a client (`expect_masked`) or a server.
    pub fn new(expect_masked: bool) -> Reader {
        Reader {
            buf: BytesMut::new(),
            frame: None,
            msg: None,
            utf8: Utf8Validator::new(),
            expect_masked,
            deflate: None,
            inflater: None,
            framing: false,
            ahead_at: NO_NOTE,
            ahead_n: 0,
            front: None,
            spare_init: false,
            init_end: 0,
            offered: 0,
            offered_exact: false,
            room_size: ROOM_MIN,
            alloc: 0,
        }
    }

    /// Accepts RSV1 (compressed messages) from now on, inflating with
    /// `inflater` (permessage-deflate was negotiated).
    pub fn enable_deflate(&mut self, inflater: Inflater) {
        self.inflater = Some(Box::new(inflater));
    }

    /// Accepts RSV1 (compressed messages) from now on, building the
    /// inflater for `params` (under the connection's
    /// [`Config::deflate`] settings) when the first compressed frame
    /// arrives: a connection that never receives one never pays for it.
    pub fn enable_deflate_lazy(&mut self, params: DeflateParams) {
        self.deflate = Some(params);
    }

    /// Appends received bytes.
    ///
    /// Bytes that continue the payload of a masked frame whose header is
    /// already decoded are unmasked while they are copied in (one pass
    /// instead of a copy and a second pass to unmask in place). `retain` is
    /// the least room a fresh buffer gets; `max_frame` caps the room
    /// reserved ahead for a frame whose header arrived (see
    /// `FRAME_ROOM_AHEAD`).
    #[inline]
    pub fn extend(&mut self, data: &[u8], retain: usize, max_frame: usize) {
        // `reserve` may move `buf` to memory this reader never wrote.
        self.spare_init = false;
        self.offered = 0;
        if self.buf.capacity() == 0 {
            self.buf.reserve(data.len().max(retain));
        }
        let mut data = data;
        if let Some(f) = self.frame.as_mut() {
            if let Some(key) = f.header.mask {
                // Only when nothing still masked is buffered ahead of it.
                if self.front.is_none() && self.buf.len() == f.unmasked && f.unmasked < f.len() {
                    let rest = f.len() - f.unmasked;
                    let n = data.len().min(rest);
                    self.buf.reserve(frame_room(rest.min(max_frame), n));
                    let key = rotate_key(key, f.unmasked);
                    copy_masked(&mut self.buf.spare_capacity_mut()[..n], &data[..n], key);
                    // SAFETY: `reserve` made room for `n` more bytes and
                    // `copy_masked` initialized all `n` of them.
                    unsafe { self.buf.set_len(self.buf.len() + n) };
                    f.unmasked += n;
                    data = &data[n..];
                }
            }
        }
        // The next frame starts right here: if its whole header is in
        // `data`, unmask its payload while copying it in, too. `next`
        // decodes the same header later and picks up the note.
        let mut at = self.buf.len();
        let here = match &self.frame {
            None => at == 0,
            Some(f) => at == f.len() && self.front.is_none(),
        };
        if self.framing && here && self.ahead_at == NO_NOTE {
            if let Ok(Some((h, hn))) = FrameHeader::decode(data) {
                let len = usize::try_from(h.len).unwrap_or(usize::MAX);
                let n = (data.len() - hn).min(len);
                // Room for the whole frame now, so that its next parts do
                // not regrow the buffer (which copies what came before).
                let room = hn + frame_room(len.min(max_frame), n);
                if at > 0 && self.buf.capacity() - at < room {
                    // The current frame (complete: `here`) moves aside
                    // rather than being copied into a larger buffer.
                    self.front = Some(self.buf.split_to(at));
                    at = 0;
                }
                self.buf.reserve(room);
                if let Some(key) = h.mask {
                    self.buf.extend_from_slice(&data[..hn]);
                    copy_masked(
                        &mut self.buf.spare_capacity_mut()[..n],
                        &data[hn..hn + n],
                        key,
                    );
                    // SAFETY: `reserve` made room for `hn + n` more bytes,
                    // `hn` of them were appended, and `copy_masked`
                    // initialized the other `n`.
                    unsafe { self.buf.set_len(self.buf.len() + n) };
                    (self.ahead_at, self.ahead_n) = (at, n);
                    data = &data[hn + n..];
                }
            }
        }
        if !data.is_empty() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Room for the host to receive into, straight after the buffered
    /// bytes; [`Reader::commit`] then takes the bytes written to its start.
    /// Payload received this way is unmasked in place, so the bytes go
    /// through memory once on their way in (with [`Reader::extend`] the
    /// host's own buffer is a second pass).
    ///
    /// How much room: for a frame of at least `BIG_FRAME` (16 KiB) whose
    /// header is in hand, the rest of that frame and no more (up to
    /// `FRAME_ROOM_AHEAD`, or as much as is buffered if that is more), so
    /// that a read never carries the next frame's first bytes in behind it
    /// and every large frame starts at the front of a buffer that has room
    /// for all of it. Otherwise at least `retain` and an adaptive size
    /// (4 KiB to 64 KiB, see `ROOM_MIN`) that remembers the last large
    /// frame, so that a stream of large frames gets each one's header and
    /// body in one read and its tail in a second, with no copy.
    ///
    /// The room is initialized memory: this reader allocates its buffers
    /// zeroed (only the part beyond what it copies in) and, while the
    /// application drops the messages it was handed, reclaims the same
    /// allocation for the next frame instead of allocating again.
    pub fn room(&mut self, retain: usize) -> &mut [u8] {
        let len = self.buf.len();
        // The frame in progress: its whole size, and the payload bytes of
        // it already buffered.
        let current = match &self.frame {
            Some(f) if self.front.is_none() => Some((f.len(), len)),
            Some(_) => None,
            // Not decoded yet (the host did not poll since the last read):
            // look at the header, unchecked, so only for sizing, bounded
            // below by what is buffered.
            None if self.framing && len > 0 => match FrameHeader::decode(&self.buf) {
                Ok(Some((h, hn))) => usize::try_from(h.len)
                    .ok()
                    .and_then(|l| l.checked_add(hn))
                    .map(|whole| (whole, len)),
                _ => None,
            },
            None => None,
        };
        let exact = match current {
            Some((whole, have)) if whole >= BIG_FRAME && have < whole => {
                // Remember the size for the frames that follow.
                self.room_size = self.room_size.max((whole + 14).min(ROOM_MAX));
                Some((whole - have).min(FRAME_ROOM_AHEAD.max(have)))
            }
            _ => None,
        };
        let want = exact.unwrap_or_else(|| self.room_size.max(retain));
        if !self.spare_init || self.buf.capacity() - len < want {
            self.make_room(want, exact.is_some());
        }
        let spare = self.buf.spare_capacity_mut();
        let n = exact.unwrap_or(spare.len());
        self.offered = n;
        self.offered_exact = exact.is_some();
        let spare = &mut spare[..n];
        // SAFETY: `spare_init` holds (checked, or established by
        // `make_room` just above), so every byte of the spare capacity is
        // initialized (see `make_room` for why); every path that could give
        // `buf` another allocation without `make_room` (`extend`'s reserves,
        // `release`, `clear`) clears `spare_init`. `MaybeUninit<u8>` has the
        // layout of `u8`, and the result borrows `self` mutably, as `spare`
        // did.
        unsafe { &mut *(spare as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) }
    }

    /// Makes `buf`'s spare capacity at least `want` bytes, all initialized;
    /// `frame_rest` says the room is for the rest of a large frame.
    ///
    /// Why the spare capacity stays initialized: every byte of an
    /// allocation that lies before the end of `buf`'s data was data once
    /// (the start only moves forward, except when reclaiming moves the data
    /// back to the allocation's first byte), and data is initialized.
    /// Beyond the data, `init_end` marks how far this function has zeroed,
    /// and it is the end of the spare capacity it left: `commit`, `advance`
    /// and `split_to` move the data's ends but not that one. Reclaiming
    /// keeps the allocation, so only capacity it exposes past `init_end` is
    /// zeroed (none, in the steady state of one large frame after another).
    /// A new allocation (made when the current one cannot be reclaimed
    /// for the room) has its whole spare capacity zeroed.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, want: usize, frame_rest: bool) {
        if self.buf.try_reclaim(want) {
            let start = self.buf.as_ptr() as usize + self.buf.len();
            let spare = self.buf.spare_capacity_mut();
            let end = start + spare.len();
            // Without the invariant (another path touched the allocation)
            // nothing past the data is known to be initialized.
            let from = if self.spare_init {
                self.init_end.clamp(start, end) - start
            } else {
                0
            };
            spare[from..].fill(std::mem::MaybeUninit::new(0));
            self.init_end = end;
            self.alloc = self.buf.capacity();
            self.spare_init = true;
            return;
        }
        // The current allocation cannot take it (`try_reclaim` reuses it
        // whenever it can). For the rest of a large frame, `reserve`: the
        // frame needs it, growth by doubling amortizes a message arriving
        // in many reads, and a large allocation may grow in place. For
        // room for new reads, `reserve` would double too, and a room of
        // `buffer_retain` bytes behind a few buffered ones kept twice what
        // a busy connection may keep: a new allocation instead, for the
        // bytes held plus the room and, behind a cut frame, an eighth of
        // the room (at most 8 KiB) over, so that the next read's cut
        // frame, a few bytes more or less than this one's, is still
        // reclaimed into it instead of allocating again.
        if frame_rest {
            self.buf.reserve(want);
        } else {
            let slack = if self.buf.is_empty() {
                0
            } else {
                (want / 8).min(ROOM_SLACK_MAX)
            };
            let mut fresh = BytesMut::with_capacity(self.buf.len() + want + slack);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        self.buf
            .spare_capacity_mut()
            .fill(std::mem::MaybeUninit::new(0));
        self.init_end = self.buf.as_ptr() as usize + self.buf.capacity();
        self.alloc = self.buf.capacity();
        self.spare_init = true;
    }

    /// Takes the first `n` bytes of the room [`Reader::room`] handed out
    /// as received (at most the room's length: more cannot have been
    /// written). Returns how many were taken; none if anything else used
    /// the buffer since the room was handed out.
    pub fn commit(&mut self, n: usize) -> usize {
        let n = n.min(self.offered);
        self.offered = 0;
        if n == 0 {
            return 0;
        }
        debug_assert!(self.spare_init, "room is offered only when initialized");
        // SAFETY: `room` handed out at least `n` bytes of spare capacity,
        // all initialized, and nothing has given `buf` another allocation
        // since (the paths that could also clear `offered`, which is not
        // 0): the `n` bytes after the buffered ones are initialized, and
        // hold what the host received.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        if !self.offered_exact {
            if n >= self.room_size {
                self.room_size = (self.room_size * 2).min(ROOM_MAX);
            } else if n < self.room_size / 4 {
                self.room_size = (self.room_size / 2).max(ROOM_MIN);
            }
        }
        n
    }

    /// Bytes received but not yet turned into frames.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops `n` bytes from the front (used by the handshake).
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.ahead_at = NO_NOTE;
    }

    /// Bytes held for an unfinished message (fragments received so far).
    pub fn message_bytes(&self) -> usize {
        self.msg.as_ref().map_or(0, |m| m.data.len())
    }

    /// Frees buffers larger than `retain` when they hold nothing.
    pub fn release(&mut self, retain: usize) {
        // An empty buffer with no capacity left may still hold on to the
        // allocation its last message was split from: let that go too.
        // Room handed out and not yet committed stays.
        // A busy connection receiving in place keeps the allocation its
        // room was sized for, even while the messages split from it are
        // alive: once the application drops them, `room` takes it back
        // without allocating (and without zeroing it again).
        let cap = self.buf.capacity();
        let keep = retain > 0 && self.spare_init && self.alloc <= retain.max(self.room_size);
        if self.buf.is_empty() && self.offered == 0 && !keep && (cap > retain || cap == 0) {
            self.buf = BytesMut::new();
            self.spare_init = false;
        }
    }

    /// Holds nothing a fresh reader would not: no buffered bytes, no frame
    /// or message in progress, no inflater. Such a reader can be dropped
    /// and rebuilt later with [`Reader::new`], [`Reader::enable_deflate_lazy`]
    /// and [`Reader::set_framing`].
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty()
            && self.front.is_none()
            && self.frame.is_none()
            && self.msg.is_none()
            && self.inflater.is_none()
            && self.ahead_at == NO_NOTE
            && self.offered == 0
    }

    /// The handshake is over: the bytes that follow are frames (lets
    /// `extend` unmask a frame's payload while copying it in).
    pub fn set_framing(&mut self) {
        self.framing = true;
    }

    /// Frees everything (the connection is closed).
    pub fn clear(&mut self) {
        self.buf = BytesMut::new();
        self.spare_init = false;
        self.offered = 0;
        self.frame = None;
        self.msg = None;
        self.ahead_at = NO_NOTE;
        self.front = None;
    }

    fn check_header(&self, h: &FrameHeader, cfg: &Config) -> Result<(), Error> {
        // RSV1 marks the first frame of a compressed message, and only
        // when permessage-deflate was negotiated.
        let rsv1_allowed = (self.inflater.is_some() || self.deflate.is_some())
            && matches!(h.opcode, OpCode::Text | OpCode::Binary);
        if h.rsv & 0b011 != 0 || (h.rsv & 0b100 != 0 && !rsv1_allowed) {
            return Err(ProtocolError::ReservedBits(h.rsv).into());
        }
        if h.mask.is_some() != self.expect_masked {
            return Err(ProtocolError::BadMasking {
                masked: h.mask.is_some(),
            }
            .into());
        }
        if h.opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::FragmentedControl.into());
            }
            if h.len > 125 {
                return Err(ProtocolError::ControlTooLong(h.len).into());
            }
            return Ok(());
        }
        if h.len > cfg.max_frame_size as u64 {
            return Err(Error::FrameTooLarge {
                len: h.len,
                limit: cfg.max_frame_size,
            });
        }
        let so_far = match (&self.msg, h.opcode) {
            (None, OpCode::Continuation) => {
                return Err(ProtocolError::UnexpectedContinuation.into())
            }
            (Some(_), OpCode::Text | OpCode::Binary) => {
                return Err(ProtocolError::ExpectedContinuation.into())
            }
            (Some(m), _) => {
                if m.fragments >= cfg.max_fragments {
                    return Err(Error::TooManyFragments {
                        limit: cfg.max_fragments,
                    });
                }
                // A compressed message's size is known only as it inflates.
                if m.compressed {
                    return Ok(());
                }
                m.data.len() as u64
            }
            (None, _) if h.rsv & 0b100 != 0 => return Ok(()),
            (None, _) => 0,
        };
        if so_far + h.len > cfg.max_message_size as u64 {
            return Err(Error::MessageTooLarge {
                limit: cfg.max_message_size,
            });
        }
        Ok(())
    }

    /// Decodes the next complete unit, if the buffered bytes hold one.
    ///
    /// An error means the peer broke the protocol or a limit; the reader
    /// must not be used afterwards.
    pub fn next(&mut self, cfg: &Config) -> Result<Option<Incoming>, Error> {
        if self.frame.is_none() && self.msg.is_none() && self.front.is_none() {
            if let Some(unit) = self.next_whole(cfg)? {
                return Ok(Some(unit));
            }
        }
        loop {
            if self.frame.is_none() {
                let (header, n) = match FrameHeader::decode(&self.buf)? {
                    Some(x) => x,
                    None => return Ok(None),
                };
                self.check_header(&header, cfg)?;
                self.buf.advance(n);
                self.framing = true;
                // Payload `extend` already unmasked (see `ahead_at`).
                // The note is always for the header at the front: it is
                // taken where a header starts (an empty buffer, or right
                // after the current frame's last byte) and moves with the
                // buffer's start.
                let unmasked = if self.ahead_at == NO_NOTE {
                    0
                } else {
                    let (at, k) = (self.ahead_at, self.ahead_n);
                    self.ahead_at = NO_NOTE;
                    debug_assert_eq!(at, 0, "header note not at the front");
                    if at == 0 {
                        k
                    } else {
                        0
                    }
                };
                let (text, compressed) = match header.opcode {
                    OpCode::Text => {
                        self.utf8.reset();
                        (true, header.rsv != 0)
                    }
                    OpCode::Binary => (false, header.rsv != 0),
                    OpCode::Continuation => self
                        .msg
                        .as_ref()
                        .map_or((false, false), |m| (m.text, m.compressed)),
                    _ => (false, false),
                };
                self.frame = Some(InFrame {
                    header,
                    done: 0,
                    unmasked,
                    // Compressed text is checked as it inflates instead.
                    text: text && !compressed,
                    compressed,
                });
            }
            let Some(f) = self.frame.as_mut() else {
                continue;
            };
            let payload = if self.front.is_some() {
                // Moved aside whole by `extend` (rare).
                finish_front(f, &mut self.utf8, &mut self.front)?
            } else {
                let avail = self.buf.len().min(f.len());
                if avail > f.done {
                    advance_frame(f, &mut self.utf8, &mut self.buf[..avail])?;
                }
                if f.done < f.len() {
                    return Ok(None);
                }
                let payload = self.buf.split_to(f.len());
                if self.ahead_at != NO_NOTE {
                    self.ahead_at -= f.len();
                }
                payload
            };
            let (header, compressed) = (f.header, f.compressed);
            self.frame = None;
            let unit = if compressed {
                self.complete_compressed(header, &payload, cfg)?
            } else {
                self.complete(header, payload)?
            };
            if let Some(unit) = unit {
                return Ok(Some(unit));
            }
        }
    }

    /// The common case in one step: a whole unfragmented, uncompressed
    /// data frame at the front of the buffer becomes its message without
    /// going through the frame-in-progress bookkeeping. Anything else (a
    /// control frame, a fragment, a compressed or incomplete frame, a
    /// header that does not decode) is left to the general path, which
    /// decodes it again and reports its errors.
    #[inline(always)]
    fn next_whole(&mut self, cfg: &Config) -> Result<Option<Incoming>, Error> {
        let Ok(Some((h, hn))) = FrameHeader::decode(&self.buf) else {
            return Ok(None);
        };
        let text = match h.opcode {
            OpCode::Text => true,
            OpCode::Binary => false,
            _ => return Ok(None),
        };
        if !h.fin || h.rsv != 0 || h.len > (self.buf.len() - hn) as u64 {
            return Ok(None);
        }
        // Payload `extend` already unmasked (the note is always for the
        // header at the front while no frame is in progress).
        let pre = match self.ahead_at {
            NO_NOTE => 0,
            0 => self.ahead_n,
            _ => return Ok(None),
        };
        self.check_header(&h, cfg)?;
        let len = h.len as usize; // <= what is buffered, checked above
        self.ahead_at = NO_NOTE;
        self.framing = true;
        // Header and payload leave the buffer as one piece and the header
        // is dropped from the frozen `Bytes`, a pointer bump: skipping it in
        // the `BytesMut` first costs ~25 more instructions, a tenth of a
        // 20-byte message's whole budget.
        let mut frame = self.buf.split_to(hn + len);
        if let Some(key) = h.mask {
            if len > pre {
                apply_mask(&mut frame[hn + pre..], key, pre);
            }
        }
        if text && !super::utf8::validate(&frame[hn..]) {
            return Err(Error::InvalidUtf8);
        }
        let mut payload = frame.freeze();
        payload.advance(hn);
        let message = if text {
            Message::Text(Text::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Ok(Some(Incoming::Message(message)))
    }

    fn complete(&mut self, h: FrameHeader, payload: BytesMut) -> Result<Option<Incoming>, Error> {
        match h.opcode {
            OpCode::Ping => Ok(Some(Incoming::Ping(payload.freeze()))),
            OpCode::Pong => Ok(Some(Incoming::Pong(payload.freeze()))),
            OpCode::Close => parse_close(&payload).map(|c| Some(Incoming::Close(c))),
            OpCode::Text | OpCode::Binary => {
                let text = h.opcode == OpCode::Text;
                if h.fin {
                    return self.finish(text, payload).map(Some);
                }
                self.msg = Some(Box::new(Partial {
                    text,
                    compressed: false,
                    data: payload,
                    fragments: 1,
                }));
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(m) = self.msg.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation.into());
                };
                m.fragments += 1;
                if m.data.is_empty() {
                    m.data = payload;
                } else if !payload.is_empty() {
                    m.data.extend_from_slice(&payload);
                }
                if !h.fin {
                    return Ok(None);
                }
                let m = self.msg.take().expect("checked above");
                self.finish(m.text, m.data).map(Some)
            }
        }
    }

    /// Handles a complete frame of a compressed message: inflates its
    /// payload onto the message, bounded by `limit`.
    fn complete_compressed(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
        cfg: &Config,
    ) -> Result<Option<Incoming>, Error> {
        let limit = cfg.max_message_size;
        if self.inflater.is_none() {
            if let Some(p) = &self.deflate {
                let (inflater, _) = deflate_halves(p, self.expect_masked, cfg);
                self.inflater = Some(Box::new(inflater));
            }
        }
        let Some(inflater) = self.inflater.as_deref_mut() else {
            return Err(ProtocolError::ReservedBits(h.rsv).into());
        };
        let mut m = match self.msg.take() {
            Some(mut m) => {
                m.fragments += 1;
                m
            }
            None => Box::new(Partial {
                text: h.opcode == OpCode::Text,
                compressed: true,
                data: BytesMut::new(),
                fragments: 1,
            }),
        };
        let utf8 = if m.text { Some(&mut self.utf8) } else { None };
        inflater.inflate(payload, &mut m.data, limit, utf8)?;
        if !h.fin {
            self.msg = Some(m);
            return Ok(None);
        }
        let utf8 = if m.text { Some(&mut self.utf8) } else { None };
        inflater.finish_message(&mut m.data, limit, utf8)?;
        if self.deflate.is_some() && inflater.retained_bytes() == 0 {
            // Nothing carried over to the next message (no zlib state, no
            // history): a fresh inflater is built again when one comes.
            self.inflater = None;
        }
        self.finish(m.text, m.data).map(Some)
    }

    fn finish(&mut self, text: bool, data: BytesMut) -> Result<Incoming, Error> {
        if text {
            self.utf8.finish().map_err(|_| Error::InvalidUtf8)?;
            Ok(Incoming::Message(Message::Text(Text::from_validated(
                data.freeze(),
            ))))
        } else {
            Ok(Incoming::Message(Message::Binary(data.freeze())))
        }
    }
}

/// The receiving and sending halves of permessage-deflate under the agreed
/// parameters, for the server (`server`) or the client, with the settings
/// of `cfg.deflate`. Building them allocates nothing (zlib's state comes on
/// first use).
pub(crate) fn deflate_halves(
    p: &DeflateParams,
    server: bool,
    cfg: &Config,
) -> (Inflater, Deflater) {
    match &cfg.deflate {
        Some(d) => deflate::halves(p, server, d),
        None => deflate::halves(p, server, &deflate::DeflateConfig::default()),
    }
}

/// Decodes a close frame's payload.
pub fn parse_close(payload: &[u8]) -> Result<Option<(CloseCode, String)>, Error> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseCodeTruncated.into()),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0).into());
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some((code, reason.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let h = FrameHeader {
            fin,
            rsv: 0,
            opcode: OpCode::from_u8(op).unwrap(),
            mask,
            len: payload.len() as u64,
        };
        let mut hb = [0u8; 14];
        let n = h.encode(&mut hb);
        let mut out = hb[..n].to_vec();
        let mut p = payload.to_vec();
        if let Some(k) = mask {
            apply_mask(&mut p, k, 0);
        }
        out.extend_from_slice(&p);
        out
    }

    fn drain(r: &mut Reader, cfg: &Config) -> Result<Vec<Incoming>, Error> {
        let mut v = Vec::new();
        while let Some(x) = r.next(cfg)? {
            v.push(x);
        }
        Ok(v)
    }

    const K: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    #[test]
    fn reassembles_fragments_with_interleaved_ping_byte_by_byte() {
        let cfg = Config::default();
        let mut wire = frame(false, 1, K, "héll".as_bytes());
        wire.extend(frame(true, 9, K, b"p"));
        wire.extend(frame(false, 0, K, b""));
        wire.extend(frame(true, 0, K, "ö wörld".as_bytes()));
        let mut r = Reader::new(true);
        let mut got = Vec::new();
        for b in &wire {
            r.extend(std::slice::from_ref(b), 0, usize::MAX);
            got.extend(drain(&mut r, &cfg).unwrap());
        }
        assert_eq!(
            got,
            vec![
                Incoming::Ping(Bytes::from_static(b"p")),
                Incoming::Message(Message::Text("héllö wörld".into())),
            ]
        );
    }

    #[test]
    fn role_and_control_rules() {
        let cfg = Config::default();
        let cases: Vec<(Vec<u8>, Error)> = vec![
            (
                frame(true, 1, None, b"x"),
                ProtocolError::BadMasking { masked: false }.into(),
            ),
            (
                frame(false, 9, K, b""),
                ProtocolError::FragmentedControl.into(),
            ),
            (
                frame(true, 9, K, &[0; 126]),
                ProtocolError::ControlTooLong(126).into(),
            ),
            (
                frame(true, 0, K, b"x"),
                ProtocolError::UnexpectedContinuation.into(),
            ),
            (
                frame(true, 8, K, &[3]),
                ProtocolError::CloseCodeTruncated.into(),
            ),
            (
                frame(true, 8, K, &[3, 0xED]),
                ProtocolError::InvalidCloseCode(1005).into(),
            ),
            (frame(true, 8, K, &[3, 0xE8, 0xFF]), Error::InvalidUtf8),
            (frame(true, 1, K, &[0xFF]), Error::InvalidUtf8),
            (
                {
                    let mut f = frame(true, 2, K, b"");
                    f[0] |= 0x40;
                    f
                },
                ProtocolError::ReservedBits(4).into(),
            ),
        ];
        for (wire, want) in cases {
            let mut r = Reader::new(true);
            r.extend(&wire, 0, usize::MAX);
            assert_eq!(drain(&mut r, &cfg).unwrap_err(), want);
        }
        let mut both = frame(false, 1, K, b"a");
        both.extend(frame(true, 2, K, b"b"));
        let mut r = Reader::new(true);
        r.extend(&both, 0, usize::MAX);
        assert_eq!(
            drain(&mut r, &cfg).unwrap_err(),
            ProtocolError::ExpectedContinuation.into()
        );
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_ends() {
        let cfg = Config::default();
        let mut payload = vec![b'a'; 1000];
        payload[10] = 0xFF;
        let wire = frame(true, 1, K, &payload);
        let mut r = Reader::new(true);
        r.extend(&wire[..30], 0, usize::MAX); // header plus 20-odd payload bytes
        assert_eq!(r.next(&cfg).unwrap_err(), Error::InvalidUtf8);
    }

    #[test]
    fn invalid_utf8_unmasked_while_copying_is_still_caught() {
        let cfg = Config::default();
        let mut payload = vec![b'a'; 1000];
        payload[900] = 0xFF;
        let wire = frame(true, 1, K, &payload);
        let mut r = Reader::new(true);
        // Header and a few payload bytes: the header is decoded, so the
        // rest is unmasked as it is copied in.
        r.extend(&wire[..20], 0, usize::MAX);
        assert_eq!(r.next(&cfg).unwrap(), None);
        r.extend(&wire[20..], 0, usize::MAX);
        assert_eq!(r.next(&cfg).unwrap_err(), Error::InvalidUtf8);
    }

    proptest::proptest! {
        /// However the bytes are cut into reads, and whether each read is
        /// copied in (`extend`, which unmasks while copying) or received
        /// into the reader's room (`room`/`commit`, unmasked in place), the
        /// same messages come out.
        #[test]
        fn any_read_split_gives_the_same_messages(
            sizes in proptest::collection::vec(0usize..3000, 1..6),
            cuts in proptest::collection::vec(1usize..700, 1..40),
            key in proptest::prelude::any::<[u8; 4]>(),
            in_place in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..8),
        ) {
            let cfg = Config::default();
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                let text: String = "héllo wörld, ".chars().cycle().take(n).collect();
                if i % 2 == 0 {
                    wire.extend(frame(true, 1, Some(key), text.as_bytes()));
                    want.push(Incoming::Message(Message::Text(text.as_str().into())));
                } else {
                    // Three fragments, binary.
                    let b = text.as_bytes();
                    let (x, y) = (b.len() / 3, 2 * b.len() / 3);
                    wire.extend(frame(false, 2, Some(key), &b[..x]));
                    wire.extend(frame(false, 0, Some(key), &b[x..y]));
                    wire.extend(frame(true, 0, Some(key), &b[y..]));
                    want.push(Incoming::Message(Message::Binary(Bytes::copy_from_slice(b))));
                }
            }
            let mut r = Reader::new(true);
            let mut got = Vec::new();
            let mut at = 0;
            for (i, c) in cuts.iter().cycle().enumerate() {
                if at == wire.len() {
                    break;
                }
                let mut end = (at + c).min(wire.len());
                if in_place.get(i % in_place.len()).copied().unwrap_or(false) {
                    // Received into the reader's room: no more than it
                    // offers, and bytes past what is committed are garbage
                    // that must not show up.
                    let room = r.room(0);
                    proptest::prop_assert!(!room.is_empty());
                    end = end.min(at + room.len());
                    let k = end - at;
                    room[..k].copy_from_slice(&wire[at..end]);
                    room[k..].fill(0xEE);
                    proptest::prop_assert_eq!(r.commit(k), k);
                } else {
                    r.extend(&wire[at..end], 0, usize::MAX);
                }
                got.extend(drain(&mut r, &cfg).unwrap());
                at = end;
            }
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn limits() {
        let cfg = Config {
            max_frame_size: 100,
            max_message_size: 150,
            max_fragments: 3,
            ..Config::default()
        };
        let mut r = Reader::new(true);
        // Only the header of a huge frame: rejected without buffering it.
        r.extend(
            &[0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
            0,
            usize::MAX,
        );
        assert!(matches!(r.next(&cfg), Err(Error::FrameTooLarge { .. })));

        let mut r = Reader::new(true);
        r.extend(&frame(false, 2, K, &[0; 100]), 0, usize::MAX);
        r.extend(&frame(true, 0, K, &[0; 51]), 0, usize::MAX);
        assert_eq!(
            drain(&mut r, &cfg).unwrap_err(),
            Error::MessageTooLarge { limit: 150 }
        );

        let mut r = Reader::new(true);
        for _ in 0..3 {
            r.extend(
                &frame(
                    false,
                    if r.message_bytes() == 0 && r.msg.is_none() {
                        2
                    } else {
                        0
                    },
                    K,
                    b"",
                ),
                0,
                usize::MAX,
            );
            drain(&mut r, &cfg).unwrap();
        }
        r.extend(&frame(true, 0, K, b""), 0, usize::MAX);
        assert_eq!(
            drain(&mut r, &cfg).unwrap_err(),
            Error::TooManyFragments { limit: 3 }
        );
    }

    #[test]
    fn empty_fragments_hold_no_memory() {
        let cfg = Config::default();
        let mut r = Reader::new(true);
        r.extend(&frame(false, 2, K, b"abc"), 0, usize::MAX);
        for _ in 0..10_000 {
            r.extend(&frame(false, 0, K, b""), 0, usize::MAX);
            assert!(drain(&mut r, &cfg).unwrap().is_empty());
        }
        assert_eq!(r.message_bytes(), 3);
        assert!(
            r.buf.capacity() < 4096,
            "read buffer grew to {}",
            r.buf.capacity()
        );
        r.extend(&frame(true, 0, K, b"d"), 0, usize::MAX);
        assert_eq!(
            drain(&mut r, &cfg).unwrap(),
            vec![Incoming::Message(Message::Binary(Bytes::from_static(
                b"abcd"
            )))]
        );
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]).unwrap(), None);
        assert_eq!(
            parse_close(&[0x03, 0xE8, b'o', b'k']).unwrap(),
            Some((CloseCode::NORMAL, "ok".to_string()))
        );
    }

    #[test]
    fn a_complete_frame_moves_aside_for_a_large_one_and_both_arrive_intact() {
        // A small frame, then a large one whose header comes in the same
        // read: the small one moves to `front` (the buffer had no room for
        // the large one) and the large one fills a buffer of its own, in
        // several reads, some before `next` runs and some after.
        let cfg = Config::default();
        let small = "smäll ".repeat(20);
        let large: String = "lärge, wide text ✓ ".repeat(4_000);
        let mut wire = frame(true, 1, K, small.as_bytes());
        let cut_small = wire.len();
        wire.extend(frame(true, 1, K, large.as_bytes()));
        wire.extend(frame(true, 2, K, b"tail"));
        for (first, second) in [(cut_small + 30, 40_000), (cut_small + 9, cut_small + 11)] {
            let mut r = Reader::new(true);
            r.set_framing();
            // Only the small frame first, so the buffer is sized for it.
            r.extend(&wire[..cut_small], 0, usize::MAX);
            r.extend(&wire[cut_small..first], 0, usize::MAX);
            r.extend(&wire[first..second], 0, usize::MAX);
            let mut got = drain(&mut r, &cfg).unwrap();
            r.extend(&wire[second..second + 5], 0, usize::MAX);
            got.extend(drain(&mut r, &cfg).unwrap());
            r.extend(&wire[second + 5..], 0, usize::MAX);
            got.extend(drain(&mut r, &cfg).unwrap());
            assert_eq!(
                got,
                vec![
                    Incoming::Message(Message::Text(small.as_str().into())),
                    Incoming::Message(Message::Text(large.as_str().into())),
                    Incoming::Message(Message::Binary(Bytes::from_static(b"tail"))),
                ],
                "cut at {first}, {second}"
            );
            assert!(r.is_idle());
        }
    }

    /// Receives `wire` through `room`/`commit` in reads of at most `read`
    /// bytes, draining after each and handing every unit to `seen` (which
    /// drops it, as a host handling each message does); returns, per read,
    /// the room's address and length and the bytes read.
    fn receive_in_place(
        r: &mut Reader,
        cfg: &Config,
        wire: &[u8],
        read: usize,
        retain: usize,
        mut seen: impl FnMut(Incoming),
    ) -> Vec<(usize, usize, usize)> {
        let (mut reads, mut at) = (Vec::new(), 0);
        while at < wire.len() {
            let room = r.room(retain);
            let k = room.len().min(read).min(wire.len() - at);
            room[..k].copy_from_slice(&wire[at..at + k]);
            reads.push((room.as_ptr() as usize, room.len(), k));
            assert_eq!(r.commit(k), k);
            at += k;
            while let Some(unit) = r.next(cfg).unwrap() {
                seen(unit);
            }
        }
        reads
    }

    /// A room of `retain` bytes asked for behind a few buffered bytes (a
    /// header cut by the read) gets an allocation of those bytes plus the
    /// room, not a doubled one: found by the `connection` fuzz target, where
    /// a busy connection with a large `buffer_retain` held 3x it.
    #[test]
    fn a_room_behind_buffered_bytes_is_sized_not_doubled() {
        let cfg = Config::default();
        let retain = 56_000;
        let mut r = Reader::new(true);
        let room = r.room(retain);
        assert!(room.len() >= retain);
        // A masked binary frame's first two bytes: its 16-bit length has not
        // arrived, so nothing can be decoded yet.
        room[..2].copy_from_slice(&[0x82, 0xFE]);
        assert_eq!(r.commit(2), 2);
        assert!(r.next(&cfg).unwrap().is_none());
        let room = r.room(retain);
        assert!(room.len() >= retain);
        assert!(
            r.buf.capacity() <= 2 + retain + ROOM_SLACK_MAX,
            "allocation {} for 2 buffered bytes and a {retain}-byte room",
            r.buf.capacity()
        );
    }

    #[test]
    fn large_frames_are_received_whole_into_one_reused_buffer() {
        let cfg = Config::default();
        let payload: Vec<u8> = (0..64 << 10).map(|i| (i * 7 % 251) as u8).collect();
        let mut wire = Vec::new();
        for _ in 0..6 {
            wire.extend(frame(true, 2, K, &payload));
        }
        let mut r = Reader::new(true);
        r.set_framing();
        let want = Incoming::Message(Message::Binary(payload.clone().into()));
        let mut count = 0;
        let reads = receive_in_place(&mut r, &cfg, &wire, 64 << 10, 4 << 10, |m| {
            assert_eq!(m, want);
            count += 1;
        });
        assert_eq!(count, 6);
        // After the first frame (which teaches the reader the size), each
        // frame takes two reads: header and most of the payload, then
        // exactly the rest, never the next frame's first bytes.
        let frame_len = payload.len() + 14;
        let steady = &reads[reads.len() - 8..];
        for pair in steady.chunks(2) {
            let ((a, room, n), (b, rest_room, rest)) = (pair[0], pair[1]);
            assert!(
                room >= frame_len,
                "room {room} for a {frame_len}-byte frame"
            );
            assert_eq!(n, 64 << 10);
            assert_eq!(
                (b, rest),
                (a + n, frame_len - n),
                "the rest lands right behind"
            );
            assert_eq!(
                rest_room,
                frame_len - n,
                "the room ends where the frame ends"
            );
        }
        // The same allocation every time: the messages were dropped, so
        // the reader reclaims it instead of allocating (and zeroing) again.
        let starts: Vec<usize> = steady.iter().step_by(2).map(|x| x.0).collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{starts:x?}");
    }

    #[test]
    fn a_kept_message_is_not_overwritten_by_the_next_read() {
        let cfg = Config::default();
        let a: Vec<u8> = vec![0x11; 40_000];
        let b: Vec<u8> = vec![0x22; 40_000];
        let mut wire = frame(true, 2, K, &a);
        wire.extend(frame(true, 2, K, &b));
        let mut r = Reader::new(true);
        r.set_framing();
        let mut kept = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let room = r.room(1 << 20);
            let k = room.len().min(wire.len() - at).min(10_000);
            room[..k].copy_from_slice(&wire[at..at + k]);
            r.commit(k);
            at += k;
            kept.extend(drain(&mut r, &cfg).unwrap());
        }
        assert_eq!(
            kept,
            vec![
                Incoming::Message(Message::Binary(a.into())),
                Incoming::Message(Message::Binary(b.into())),
            ]
        );
    }

    #[test]
    fn commit_takes_only_what_the_room_offered() {
        let cfg = Config::default();
        let mut r = Reader::new(true);
        r.set_framing();
        // Nothing offered: nothing taken.
        assert_eq!(r.commit(10), 0);
        let wire = frame(true, 2, K, b"hello");
        let room = r.room(0);
        let len = room.len();
        room[..wire.len()].copy_from_slice(&wire);
        // More than the room cannot have been written: cut to it (the
        // rest of the room is zeros, not a frame, so it stays buffered).
        assert_eq!(r.commit(usize::MAX), len);
        assert_eq!(r.commit(1), 0, "one commit per room");
        assert_eq!(
            r.next(&cfg).unwrap(),
            Some(Incoming::Message(Message::Binary(Bytes::from_static(
                b"hello"
            ))))
        );
        // Other input between `room` and `commit` takes the room back.
        let mut r = Reader::new(true);
        r.set_framing();
        let room = r.room(0);
        room[..wire.len()].copy_from_slice(&wire);
        r.extend(&wire, 0, usize::MAX);
        assert_eq!(r.commit(wire.len()), 0);
        assert_eq!(drain(&mut r, &cfg).unwrap().len(), 1);
    }

    #[test]
    fn room_adapts_to_the_reads() {
        let mut r = Reader::new(true);
        r.set_framing();
        assert_eq!(r.room(0).len(), ROOM_MIN);
        // Reads that fill it double it, up to the most.
        for _ in 0..8 {
            let n = r.room(0).len();
            let room = r.room(0);
            room[..n].fill(0x82);
            r.commit(n);
            r.buf.clear();
        }
        assert_eq!(r.room_size, ROOM_MAX);
        // Reads that use under a quarter halve it, down to the least.
        for _ in 0..8 {
            r.room(0);
            r.commit(1);
            r.buf.clear();
        }
        assert_eq!(r.room_size, ROOM_MIN);
        // Busy connections get at least what they retain.
        assert!(r.room(100_000).len() >= 100_000);
    }

    /// Every room is initialized memory, whatever happened to the buffer
    /// before: bytes copied in with `extend`, messages kept alive or
    /// dropped (so the allocation is shared, reclaimed or replaced),
    /// frames that outgrow it. The whole room is read before it is
    /// written; under Miri (`cargo +nightly miri test -p evsock --lib
    /// room_`) a single uninitialized byte would stop the test.
    #[test]
    fn room_is_always_initialized_memory() {
        let cfg = Config::default();
        // Small and large frames, some past FRAME_ROOM_AHEAD (fewer, and
        // smaller, under Miri, which is slow).
        let sizes: &[usize] = if cfg!(miri) {
            &[10, 3_000, 17_000, 5, 70_000, 40, 16_500]
        } else {
            &[10, 3_000, 20_000, 70_000, 5, 150_000, 40, 16_500]
        };
        let mut wire = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
            wire.extend(frame(true, 2, K, &payload));
        }
        let steps: &[usize] = if cfg!(miri) {
            &[5_000, 65_536]
        } else {
            &[97, 777, 4096, 65_536]
        };
        for &step in steps {
            let mut r = Reader::new(true);
            r.set_framing();
            let mut kept = Vec::new();
            let (mut at, mut turn, mut sum) = (0, 0usize, 0u64);
            while at < wire.len() {
                turn += 1;
                if turn % 5 == 0 {
                    // Sometimes copied in (which may reallocate the buffer
                    // with uninitialized spare capacity).
                    let end = (at + step).min(wire.len());
                    r.extend(&wire[at..end], 0, usize::MAX);
                    at = end;
                } else {
                    let room = r.room(if turn % 3 == 0 { 8192 } else { 0 });
                    sum += room.iter().map(|&b| u64::from(b)).sum::<u64>();
                    let k = room.len().min(step).min(wire.len() - at);
                    room[..k].copy_from_slice(&wire[at..at + k]);
                    assert_eq!(r.commit(k), k);
                    at += k;
                }
                while let Some(unit) = r.next(&cfg).unwrap() {
                    // Keep every other message alive for a while.
                    if turn % 2 == 0 {
                        kept.push(unit);
                    }
                }
                if kept.len() > 2 {
                    kept.clear();
                }
                r.release(if turn % 4 == 0 { 4096 } else { 0 });
            }
            std::hint::black_box(sum);
        }
    }
}
