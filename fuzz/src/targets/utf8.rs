//! The incremental UTF-8 validator against the standard library: fed in
//! arbitrary pieces, it must fail exactly when the bytes so far can no
//! longer be the start of valid UTF-8, and finish OK exactly on valid text.

use evsock::ws::utf8::Utf8Validator;

use crate::{ensure, Stop};

/// The target. Byte 0: how many chunk-size bytes follow; then the sizes;
/// then the text.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Some((&n, rest)) = data.split_first() else {
        return Ok(());
    };
    let n = (n as usize % 8).min(rest.len());
    let (sizes, text) = rest.split_at(n);
    let mut v = Utf8Validator::new();
    // Two messages through one validator: `reset` must forget the first.
    for round in 0..2 {
        v.reset();
        let mut end = 0;
        // `text[..valid]` is known valid and ends on a character boundary,
        // so std's verdict on `text[..end]` is its verdict on
        // `text[valid..end]`: checking only that keeps a run over many
        // small pieces linear instead of quadratic.
        let mut valid = 0;
        let mut failed = false;
        for piece in crate::gen::chunks(text, sizes) {
            end += piece.len();
            let ok = v.feed(piece).is_ok();
            let std = std::str::from_utf8(&text[valid..end]);
            let doomed = matches!(&std, Err(e) if e.error_len().is_some());
            ensure!(
                ok != doomed,
                "utf8",
                "round {round}: after {end} bytes of {:02x?} feed says ok={ok}, \
                 std says {std:?} from byte {valid}",
                &text[..end]
            );
            if !ok {
                failed = true;
                break;
            }
            ensure!(
                v.is_complete() == std.is_ok(),
                "utf8",
                "is_complete() = {} after {end} bytes of {:02x?}",
                v.is_complete(),
                &text[..end]
            );
            valid = match std {
                Ok(_) => end,
                Err(e) => valid + e.valid_up_to(),
            };
        }
        if !failed {
            let fin = v.finish().is_ok();
            ensure!(
                fin == std::str::from_utf8(text).is_ok(),
                "utf8",
                "finish() = {fin} for {text:02x?}"
            );
        }
    }
    Ok(())
}
