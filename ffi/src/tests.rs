//! Rust-side tests of the boundary machinery; the C tests in ffi/tests
//! exercise the same functions from C, under valgrind and ASan.

use std::ffi::CStr;
use std::ptr;

use super::*;
use crate::status::guard;
use evsock_status::*;

fn last_error() -> String {
    // SAFETY: evsock_last_error always returns a valid NUL-terminated string
    // that lives until the next evsock call on this thread.
    unsafe { CStr::from_ptr(evsock_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn name(s: i32) -> String {
    // SAFETY: status names are static NUL-terminated strings.
    unsafe { CStr::from_ptr(evsock_status_name(s)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn guard_turns_a_panic_into_a_status_and_message() {
    let s = guard(|| panic!("boom {}", 42));
    assert_eq!(s, EVSOCK_ERR_PANIC);
    assert!(last_error().contains("boom 42"), "{}", last_error());
    let s = guard(|| std::panic::panic_any(7u8));
    assert_eq!(s, EVSOCK_ERR_PANIC);
    assert!(last_error().contains("unknown panic payload"));
}

#[test]
fn every_engine_error_kind_has_its_own_status() {
    use evsock::ws::{Error, HandshakeError, ProtocolError};
    let errors = [
        Error::Handshake(HandshakeError::BadAccept),
        Error::Protocol(ProtocolError::FragmentedControl),
        Error::InvalidUtf8,
        Error::FrameTooLarge { len: 1, limit: 0 },
        Error::MessageTooLarge { limit: 0 },
        Error::TooManyFragments { limit: 0 },
        Error::PongTimeout,
        Error::IdleTimeout,
        Error::HandshakeTimeout,
        Error::CloseTimeout,
        Error::UnexpectedEof,
        Error::InvalidState("x"),
        Error::OutboundFull { limit: 0 },
        Error::InvalidArgument("x"),
        Error::Compression,
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &errors {
        let s = evsock_status::from_engine(e);
        assert_ne!(s, EVSOCK_ERR_OTHER, "{e:?} has no C status");
        assert_eq!(name(s as i32), e.kind());
        assert!(seen.insert(s as i32));
    }
}

#[test]
fn status_names_are_unique_and_unknown_values_are_named() {
    let mut names = std::collections::HashSet::new();
    for s in evsock_status::ALL {
        assert!(names.insert(name(s as i32)), "duplicate name for {s:?}");
    }
    assert_eq!(name(2), "unknown");
    assert_eq!(name(i32::MIN), "unknown");
}

#[test]
fn null_handles_and_out_pointers_are_reported() {
    // SAFETY: every pointer passed is NULL or points at a local.
    unsafe {
        assert_eq!(
            evsock_conn_new_server(ptr::null(), 0, ptr::null_mut()),
            EVSOCK_ERR_NULL_POINTER
        );
        assert_eq!(
            evsock_conn_send_text(ptr::null_mut(), c"x".as_ptr(), 1),
            EVSOCK_ERR_NULL_POINTER
        );
        assert!(last_error().contains("conn is NULL"));
        let mut c = ptr::null_mut();
        assert_eq!(evsock_conn_new_server(ptr::null(), 5, &mut c), EVSOCK_OK);
        assert!(!c.is_null());
        assert_eq!(
            evsock_conn_poll_event(c, ptr::null_mut()),
            EVSOCK_ERR_NULL_POINTER
        );
        assert_eq!(
            evsock_conn_poll_output(c, ptr::null_mut()),
            EVSOCK_ERR_NULL_POINTER
        );
        assert_eq!(
            evsock_conn_handle_input(c, 0, ptr::null(), 3),
            EVSOCK_ERR_NULL_POINTER
        );
        let mut d = 0u64;
        assert_eq!(evsock_conn_poll_timeout(c, &mut d), EVSOCK_OK);
        assert_eq!(d, 10_005);
        evsock_conn_free(c);
        evsock_conn_free(ptr::null_mut());
        evsock_config_free(ptr::null_mut());
    }
}

#[test]
fn poll_output_drives_a_server_handshake() {
    let req = b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // SAFETY: all pointers are locals or come from evsock and are used
    // within their documented lifetimes.
    unsafe {
        let mut c = ptr::null_mut();
        assert_eq!(evsock_conn_new_server(ptr::null(), 0, &mut c), EVSOCK_OK);
        assert_eq!(
            evsock_conn_handle_input(c, 1, req.as_ptr(), req.len()),
            EVSOCK_OK
        );
        let mut o = std::mem::MaybeUninit::<evsock_output>::uninit();
        assert_eq!(evsock_conn_poll_output(c, o.as_mut_ptr()), EVSOCK_OK);
        let o1 = o.assume_init();
        assert_eq!(o1.kind, evsock_output_kind::EVSOCK_OUTPUT_EVENT);
        assert_eq!(o1.event.kind, evsock_event_type::EVSOCK_EVENT_REQUEST);
        assert_eq!(
            std::slice::from_raw_parts(o1.event.data, o1.event.len),
            b"/x"
        );
        assert_eq!(
            evsock_conn_accept(c, ptr::null(), ptr::null(), 0),
            EVSOCK_OK
        );
        assert_eq!(evsock_conn_poll_output(c, o.as_mut_ptr()), EVSOCK_OK);
        let o2 = o.assume_init();
        assert_eq!(o2.kind, evsock_output_kind::EVSOCK_OUTPUT_TRANSMIT);
        let resp = std::slice::from_raw_parts(o2.data, o2.len);
        assert!(resp.starts_with(b"HTTP/1.1 101 "));
        assert_eq!(evsock_conn_poll_output(c, o.as_mut_ptr()), EVSOCK_OK);
        let o3 = o.assume_init();
        assert_eq!(o3.event.kind, evsock_event_type::EVSOCK_EVENT_OPEN);
        assert_eq!(evsock_conn_poll_output(c, o.as_mut_ptr()), EVSOCK_OK);
        let o4 = o.assume_init();
        assert_eq!(o4.kind, evsock_output_kind::EVSOCK_OUTPUT_WAIT);
        assert!(o4.has_deadline, "the default config pings every 30 s");
        assert_eq!(o4.deadline_ms, 30_001);
        evsock_conn_free(c);
    }
}

#[test]
fn config_rejects_bad_values_without_changing_anything() {
    // SAFETY: pointers are locals or a live config handle.
    unsafe {
        let mut cfg = ptr::null_mut();
        assert_eq!(evsock_config_new(&mut cfg), EVSOCK_OK);
        let mut v = 0;
        assert_eq!(evsock_config_set(cfg, 1, 0), EVSOCK_ERR_INVALID_ARGUMENT);
        assert_eq!(evsock_config_get(cfg, 1, &mut v), EVSOCK_OK);
        assert_eq!(v, 16 << 20);
        assert_eq!(
            evsock_config_add_subprotocol(cfg, c"no spaces allowed".as_ptr()),
            EVSOCK_ERR_INVALID_ARGUMENT
        );
        evsock_config_free(cfg);
    }
}

#[test]
fn every_hub_error_has_a_c_status() {
    use crate::status::Fail;
    use evsock::hub::{ClusterError, HubError};
    use evsock::session::SendError;
    let cases = [
        (HubError::UnknownConnection, EVSOCK_ERR_UNKNOWN_CONNECTION),
        (HubError::UnknownClient, EVSOCK_ERR_UNKNOWN_CLIENT),
        (HubError::InvalidState("x"), EVSOCK_ERR_INVALID_STATE),
        (HubError::BadUserId, EVSOCK_ERR_BAD_USER_ID),
        (HubError::BadRoom, EVSOCK_ERR_BAD_ROOM),
        (HubError::Forbidden, EVSOCK_ERR_FORBIDDEN),
        (HubError::TooManyRooms, EVSOCK_ERR_TOO_MANY_ROOMS),
        (
            HubError::TooManyConnections,
            EVSOCK_ERR_TOO_MANY_CONNECTIONS,
        ),
        (HubError::InvalidData, EVSOCK_ERR_INVALID_DATA),
        (
            HubError::Send(SendError::NotConnected),
            EVSOCK_ERR_NOT_CONNECTED,
        ),
        (
            HubError::Send(SendError::BadEventId),
            EVSOCK_ERR_BAD_EVENT_ID,
        ),
        (
            HubError::Ws(evsock::ws::Error::InvalidUtf8),
            EVSOCK_ERR_INVALID_UTF8,
        ),
        (
            HubError::Cluster(ClusterError::BadMagic),
            EVSOCK_ERR_CLUSTER,
        ),
        (HubError::BadConfig("x"), EVSOCK_ERR_INVALID_ARGUMENT),
    ];
    for (e, want) in cases {
        let text = e.to_string();
        let f = Fail::from(e);
        assert_eq!(f.status, want, "{text}");
        assert_eq!(f.message, text);
    }
}

#[test]
fn a_hub_config_carries_the_connection_session_and_hub_options() {
    // SAFETY: pointers are locals or a live config handle.
    unsafe {
        let mut cfg = ptr::null_mut();
        assert_eq!(evsock_config_new_hub(&mut cfg), EVSOCK_OK);
        let set = |o: evsock_option, v: u64| evsock_config_set(cfg, o as u32, v);
        assert_eq!(
            set(evsock_option::EVSOCK_OPT_MAX_MESSAGE_SIZE, 4096),
            EVSOCK_OK
        );
        assert_eq!(
            set(evsock_option::EVSOCK_OPT_SESSION_RESUME_WINDOW_MS, 777),
            EVSOCK_OK
        );
        assert_eq!(
            set(evsock_option::EVSOCK_OPT_HUB_MAX_SESSIONS, 9),
            EVSOCK_OK
        );
        assert_eq!(
            evsock_config_set_string(
                cfg,
                evsock_option::EVSOCK_OPT_HUB_NODE_ID as u32,
                c"n7".as_ptr()
            ),
            EVSOCK_OK
        );
        let h = crate::config::config_ref(cfg).unwrap().hub_config();
        assert_eq!(h.ws.max_message_size, 4096);
        assert_eq!(h.ws.ping_interval_ms, None);
        assert_eq!(h.session.resume_window_ms, 777);
        assert_eq!(h.max_sessions, 9);
        assert_eq!(h.node_id.as_deref(), Some("n7"));
        assert_eq!(h.channel_prefix, "evsock");
        evsock_config_free(cfg);
    }
}

#[test]
fn every_refused_session_call_has_its_own_status() {
    use crate::status::Fail;
    use evsock::session::SendError;
    let all = [
        SendError::BadEventId,
        SendError::ReservedEvent,
        SendError::TooLarge,
        SendError::NotConnected,
        SendError::TooManyPending,
        SendError::BufferFull,
        SendError::BadTimeout,
        SendError::UnknownRequest,
        SendError::BadIdempotencyKey,
        SendError::Closed,
    ];
    let mut seen = std::collections::HashSet::new();
    for e in all {
        let code = e.code();
        let f = Fail::from(e);
        assert_ne!(f.status, EVSOCK_ERR_OTHER, "{code}");
        assert_eq!(f.status.name(), code);
        assert!(seen.insert(f.status as i32), "{code} shares a status");
    }
    assert_eq!(
        Fail::from(SendError::BufferFull).status,
        EVSOCK_ERR_BUFFER_FULL
    );
}
