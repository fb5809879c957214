//! Modbus framing, our own so that faults (garbage, stalls, partial frames)
//! can be injected: MBAP for TCP, address + PDU + CRC-16 for RTU, and the
//! read requests a simulated device answers.

/// A request PDU the simulator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Function code (1, 2, 3, 4 are served; anything else gets exception 01).
    pub function: u8,
    pub address: u16,
    pub quantity: u16,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("mbap protocol id {0} is not 0 (modbus)")]
    ProtocolId(u16),
    #[error("mbap length {0} is outside 2..=254")]
    Length(u16),
    #[error("rtu frame crc mismatch")]
    Crc,
}

/// A TCP request: transaction id, unit id and PDU bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFrame {
    pub transaction: u16,
    pub unit: u8,
    pub pdu: Vec<u8>,
}

/// Decodes one MBAP frame from the front of `buf`: `Ok(None)` when more bytes
/// are needed, otherwise the frame and the bytes it used.
pub fn decode_tcp(buf: &[u8]) -> Result<Option<(TcpFrame, usize)>, FrameError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    if protocol != 0 {
        return Err(FrameError::ProtocolId(protocol));
    }
    let len = u16::from_be_bytes([buf[4], buf[5]]);
    if !(2..=254).contains(&len) {
        return Err(FrameError::Length(len));
    }
    let total = 6 + usize::from(len);
    if buf.len() < total {
        return Ok(None);
    }
    let frame = TcpFrame {
        transaction: u16::from_be_bytes([buf[0], buf[1]]),
        unit: buf[6],
        pdu: buf[7..total].to_vec(),
    };
    Ok(Some((frame, total)))
}

/// Wraps a response PDU in an MBAP header.
pub fn encode_tcp(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + pdu.len());
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

/// Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Length of an RTU request frame from its first bytes, when known.
fn rtu_request_len(buf: &[u8]) -> Option<usize> {
    let function = *buf.get(1)?;
    match function {
        1..=6 => Some(8),
        15 | 16 => buf.get(6).map(|&n| 9 + usize::from(n)),
        // Unknown functions carry no length: assume the shortest request.
        _ => Some(8),
    }
}

/// Decodes one RTU request (unit, PDU) from the front of `buf`. RTU has no
/// length field, so the length comes from the function code; on a CRC error
/// the caller drops one byte and tries again to resynchronise.
pub fn decode_rtu(buf: &[u8]) -> Result<Option<(u8, Vec<u8>, usize)>, FrameError> {
    let Some(len) = rtu_request_len(buf) else {
        return Ok(None);
    };
    if buf.len() < len {
        return Ok(None);
    }
    let crc = u16::from_le_bytes([buf[len - 2], buf[len - 1]]);
    if crc16(&buf[..len - 2]) != crc {
        return Err(FrameError::Crc);
    }
    Ok(Some((buf[0], buf[1..len - 2].to_vec(), len)))
}

/// Wraps a PDU with the unit address and CRC (low byte first).
pub fn encode_rtu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + pdu.len());
    out.push(unit);
    out.extend_from_slice(pdu);
    out.extend_from_slice(&crc16(&out).to_le_bytes());
    out
}

/// Parses a request PDU: reads (1-4) fully; other functions keep only their code.
pub fn parse_request(pdu: &[u8]) -> Option<Request> {
    let function = *pdu.first()?;
    if (1..=4).contains(&function) {
        if pdu.len() != 5 {
            return None;
        }
        return Some(Request {
            function,
            address: u16::from_be_bytes([pdu[1], pdu[2]]),
            quantity: u16::from_be_bytes([pdu[3], pdu[4]]),
        });
    }
    Some(Request {
        function,
        address: 0,
        quantity: 0,
    })
}

/// An exception response PDU.
pub fn exception(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// A read-registers response PDU (functions 3 and 4).
pub fn registers_response(function: u8, words: &[u16]) -> Vec<u8> {
    let mut out = vec![function, (words.len() * 2) as u8];
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// A read-bits response PDU (functions 1 and 2), bits packed LSB first.
pub fn bits_response(function: u8, bits: &[bool]) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    let mut out = vec![function, bytes.len() as u8];
    out.extend_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_of_a_known_frame() {
        // Read holding registers, unit 1, address 0, 10 registers: 01 03 00 00 00 0A C5 CD.
        assert_eq!(
            encode_rtu(1, &[3, 0, 0, 0, 10]),
            vec![1, 3, 0, 0, 0, 10, 0xC5, 0xCD]
        );
        let (unit, pdu, used) = decode_rtu(&[1, 3, 0, 0, 0, 10, 0xC5, 0xCD, 9])
            .unwrap()
            .unwrap();
        assert_eq!((unit, used), (1, 8));
        assert_eq!(
            parse_request(&pdu),
            Some(Request {
                function: 3,
                address: 0,
                quantity: 10
            })
        );
        assert_eq!(
            decode_rtu(&[1, 3, 0, 0, 0, 10, 0xC5, 0xCE]),
            Err(FrameError::Crc)
        );
    }

    #[test]
    fn tcp_waits_for_a_whole_frame() {
        let f = encode_tcp(7, 2, &[4, 0, 0x34, 0, 2]);
        assert_eq!(decode_tcp(&f[..9]), Ok(None));
        let (frame, used) = decode_tcp(&f).unwrap().unwrap();
        assert_eq!((frame.transaction, frame.unit, used), (7, 2, f.len()));
        assert_eq!(
            parse_request(&frame.pdu),
            Some(Request {
                function: 4,
                address: 0x34,
                quantity: 2
            })
        );
        assert_eq!(bits_response(2, &[true, false, true]), vec![2, 1, 0b101]);
    }

    proptest! {
        /// Arbitrary bytes never panic the decoders, and a decoded frame never
        /// claims more bytes than it was given.
        #[test]
        fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, used))) = decode_tcp(&bytes) { prop_assert!(used <= bytes.len()); }
            if let Ok(Some((_, _, used))) = decode_rtu(&bytes) { prop_assert!(used <= bytes.len()); }
            let _ = parse_request(&bytes);
        }

        #[test]
        fn frames_round_trip(tid in any::<u16>(), unit in any::<u8>(), f in 1u8..=4, a in any::<u16>(), q in any::<u16>()) {
            let pdu = [f, (a >> 8) as u8, a as u8, (q >> 8) as u8, q as u8];
            let (t, used) = decode_tcp(&encode_tcp(tid, unit, &pdu)).unwrap().unwrap();
            prop_assert_eq!((t.transaction, t.unit, used), (tid, unit, 12));
            prop_assert_eq!(parse_request(&t.pdu), Some(Request { function: f, address: a, quantity: q }));
            let (u, p, _) = decode_rtu(&encode_rtu(unit, &pdu)).unwrap().unwrap();
            prop_assert_eq!((u, p), (unit, pdu.to_vec()));
        }

        /// Any single corrupted byte of an RTU frame is caught by the CRC.
        #[test]
        fn rtu_corruption_is_detected(pos in 0usize..8, flip in 1u8..=255) {
            let mut f = encode_rtu(1, &[3, 0, 0, 0, 10]);
            prop_assume!(pos != 1); // changing the function code changes the expected length
            f[pos] ^= flip;
            prop_assert!(!matches!(decode_rtu(&f), Ok(Some(_))));
        }
    }
}
