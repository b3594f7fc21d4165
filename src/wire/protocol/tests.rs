//! Frames, the JSON forms of requests and responses, and their names.

use super::*;

#[test]
fn request_round_trips_through_a_frame() {
    let request = Request::Send {
        recipient: "John".into(),
        envelope: Base64Bytes(vec![0, 1, 2, 255]),
    };
    let frame = request.to_frame();
    let (payload, used) = decode_frame(&frame, 1024).unwrap().unwrap();
    assert_eq!(used, frame.len());
    assert_eq!(Request::from_payload(payload).unwrap(), request);
}

#[test]
fn wire_spelling_is_tagged_json() {
    let frame = Request::GetKey {
        user: "John".into(),
        claim: false,
    }
    .to_frame();
    assert_eq!(&frame[4..], br#"{"type":"get_key","user":"John"}"#);
    let claiming = Request::GetKey {
        user: "John".into(),
        claim: true,
    }
    .to_frame();
    assert_eq!(
        &claiming[4..],
        br#"{"type":"get_key","user":"John","claim":true}"#
    );
    let error = Response::error(ErrorCode::NameTaken, "taken");
    let json = serde_json::to_string(&error).unwrap();
    assert_eq!(
        json,
        r#"{"type":"error","code":"name_taken","message":"taken"}"#
    );
}

#[test]
fn an_error_carries_a_wait_only_when_it_has_one() {
    let waiting = Response::Error {
        code: ErrorCode::RateLimited,
        message: "too many login requests from your address".into(),
        retry_after: Some(42),
    };
    let json = serde_json::to_string(&waiting).unwrap();
    assert_eq!(
        json,
        r#"{"type":"error","code":"rate_limited","message":"too many login requests from your address","retry_after":42}"#
    );
    assert_eq!(Response::from_payload(json.as_bytes()).unwrap(), waiting);
    let plain = br#"{"type":"error","code":"internal","message":"x"}"#;
    assert!(matches!(
        Response::from_payload(plain),
        Ok(Response::Error {
            retry_after: None,
            ..
        })
    ));
    let negative = br#"{"type":"error","code":"rate_limited","message":"x","retry_after":-1}"#;
    assert!(Response::from_payload(negative).is_err());
}

#[test]
fn fetch_without_wait_omits_the_field() {
    let frame = Request::Fetch {
        after: 1,
        limit: 2,
        wait_ms: 0,
    }
    .to_frame();
    assert_eq!(&frame[4..], br#"{"type":"fetch","after":1,"limit":2}"#);
    let waiting = Request::from_payload(br#"{"type":"fetch","after":0,"limit":1,"wait_ms":5}"#);
    assert!(matches!(waiting, Ok(Request::Fetch { wait_ms: 5, .. })));
    assert_eq!(&Request::Logout.to_frame()[4..], br#"{"type":"logout"}"#);
}

#[test]
fn unknown_request_types_and_fields_are_rejected() {
    assert!(Request::from_payload(br#"{"type":"shutdown"}"#).is_err());
    assert!(Request::from_payload(br#"{"type":"login","user":"a","x":1}"#).is_err());
}

/// One of each request and response, so that a variant added without
/// a sample here fails [`kinds_are_the_wire_names`] by count.
pub(crate) fn every_request_and_response() -> (Vec<Request>, Vec<Response>) {
    let bytes = || Base64Bytes(vec![1]);
    let prekey = || SignedPrekey {
        id: 1,
        public_key: bytes(),
        created_at: 2,
        signature: bytes(),
    };
    let user = || "a".to_owned();
    let requests = vec![
        Request::Hello { version: 2 },
        Request::Register {
            user: user(),
            public_key: bytes(),
            signed_prekey: prekey(),
            one_time_prekeys: vec![prekey()],
            proof: bytes(),
        },
        Request::Login { user: user() },
        Request::LoginProof { signature: bytes() },
        Request::Authenticate {
            user: user(),
            token: bytes(),
        },
        Request::GetKey {
            user: user(),
            claim: true,
        },
        Request::PublishPrekeys {
            signed_prekey: Some(prekey()),
            one_time_prekeys: vec![prekey()],
            replace_one_time_prekeys: true,
        },
        Request::RotateKey {
            rotation: KeyRotation {
                old_key: bytes(),
                new_key: bytes(),
                rotated_at: 1,
                old_signature: bytes(),
                new_signature: bytes(),
            },
            signed_prekey: prekey(),
            one_time_prekeys: vec![prekey()],
        },
        Request::Send {
            recipient: user(),
            envelope: bytes(),
        },
        Request::Fetch {
            after: 0,
            limit: 1,
            wait_ms: 0,
        },
        Request::Ack { ids: vec![1] },
        Request::Logout,
        Request::LogoutAll,
        Request::Unregister,
    ];
    let responses = vec![
        Response::Hello {
            version: 2,
            max_envelope: 1,
        },
        Response::Registered { user: user() },
        Response::LoginChallenge { nonce: bytes() },
        Response::LoggedIn {
            user: user(),
            token: bytes(),
            expires_at: 1,
            one_time_prekeys: 100,
        },
        Response::Authenticated {
            user: user(),
            expires_at: 1,
            one_time_prekeys: 100,
        },
        Response::Key {
            user: user(),
            public_key: bytes(),
            signed_prekey: None,
            one_time_prekey: Some(prekey()),
            rotations: Vec::new(),
        },
        Response::PrekeysPublished {
            one_time_prekeys: 100,
        },
        Response::KeyRotated {
            one_time_prekeys: 100,
        },
        Response::Sent { id: 1 },
        Response::Messages { messages: vec![] },
        Response::Acked { count: 1 },
        Response::LoggedOut,
        Response::Unregistered { user: user() },
        Response::Error {
            code: ErrorCode::Internal,
            message: "x".into(),
            retry_after: None,
        },
    ];
    (requests, responses)
}

/// `kind()` is spelt by hand beside serde's tag; every variant is
/// checked to agree, and to appear once.
#[test]
fn kinds_are_the_wire_names() {
    let (requests, responses) = every_request_and_response();
    let mut kinds = Vec::new();
    for request in &requests {
        let json = serde_json::to_value(request).unwrap();
        assert_eq!(json["type"], request.kind());
        kinds.push(format!("request {}", request.kind()));
    }
    for response in &responses {
        let json = serde_json::to_value(response).unwrap();
        assert_eq!(json["type"], response.kind());
        kinds.push(format!("response {}", response.kind()));
    }
    let count = kinds.len();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), count, "each variant once");
    // As many as the enums have variants (update with a new one).
    assert_eq!((requests.len(), responses.len()), (14, 14));
}

#[test]
fn error_codes_have_one_spelling_on_the_wire_and_in_logs() {
    let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    for code in ErrorCode::ALL {
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ErrorCode::ALL.len());
    assert!(serde_json::from_str::<ErrorCode>("\"teapot\"").is_err());
}
