//! The fixed layout of the table: its header (validated once, at load) and the little readers for
//! words, varints and NUL-terminated names that every lookup uses. Readers return `None` past the
//! end of the data instead of panicking.

use super::{PclntabError, HEADER_SIZE, MAGIC_GO118, MAGIC_GO120};

/// The decoded, validated header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub(super) go120: bool,
    pub(super) quantum: u64,
    pub(super) nfunc: usize,
    pub(super) text_start: u64,
    pub(super) funcname: usize,
    pub(super) cutab: usize,
    pub(super) filetab: usize,
    pub(super) pctab: usize,
    pub(super) functab: usize,
}

impl Header {
    pub(super) fn parse(data: &[u8]) -> Result<Header, PclntabError> {
        if data.len() < HEADER_SIZE {
            return Err(PclntabError::TooShort { len: data.len() });
        }
        let magic = read_u32(data, 0).unwrap_or(0);
        let go120 = match magic {
            MAGIC_GO118 => false,
            MAGIC_GO120 => true,
            0xffff_fffa | 0xffff_fffb => return Err(PclntabError::TooOld { magic }),
            _ => return Err(PclntabError::BadMagic { magic }),
        };
        let bad = |reason| PclntabError::BadHeader { reason };
        if data.get(4..6) != Some(&[0, 0]) {
            return Err(bad("padding bytes are not zero"));
        }
        let quantum = u64::from(data.get(6).copied().unwrap_or(0));
        if !matches!(quantum, 1 | 2 | 4) {
            return Err(bad("minimum instruction size is not 1, 2 or 4"));
        }
        if data.get(7) != Some(&8) {
            return Err(bad(
                "pointer size is not 8 (only 64-bit binaries are supported)",
            ));
        }
        let word = |index: usize| read_u64(data, 8 + 8 * index).unwrap_or(0);
        let offset = |index: usize| -> Result<usize, PclntabError> {
            usize::try_from(word(index))
                .ok()
                .filter(|&offset| offset >= HEADER_SIZE && offset <= data.len())
                .ok_or(bad("a sub-table offset points outside the table"))
        };
        let nfunc = usize::try_from(word(0)).map_err(|_| bad("function count overflows"))?;
        let functab = offset(7)?;
        // The function table holds nfunc (entry, record) pairs plus the end offset.
        let needed = nfunc
            .checked_mul(8)
            .and_then(|size| size.checked_add(4))
            .and_then(|size| size.checked_add(functab))
            .ok_or(bad("function count overflows"))?;
        if needed > data.len() {
            return Err(bad("the function count does not fit in the table"));
        }
        Ok(Header {
            go120,
            quantum,
            nfunc,
            text_start: word(2),
            funcname: offset(3)?,
            cutab: offset(4)?,
            filetab: offset(5)?,
            pctab: offset(6)?,
            functab,
        })
    }
}

/// A little-endian u32 at `offset`.
pub(super) fn read_u32(data: &[u8], offset: usize) -> Option<u32> {
    let bytes = data.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// A little-endian u64 at `offset`.
pub(super) fn read_u64(data: &[u8], offset: usize) -> Option<u64> {
    let bytes = data.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// An unsigned varint of at most 32 bits at `offset`, with its length in bytes.
pub(super) fn read_varint(data: &[u8], offset: usize) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for index in 0..5 {
        let byte = *data.get(offset.checked_add(index)?)?;
        value |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// The NUL-terminated bytes at `start`.
pub(super) fn c_string(data: &[u8], start: usize) -> Option<&[u8]> {
    let tail = data.get(start..)?;
    let len = tail.iter().position(|&byte| byte == 0)?;
    tail.get(..len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pclntab::Pclntab;

    #[test]
    fn rejects_bad_headers_without_panicking() {
        assert_eq!(
            Pclntab::parse(vec![0; 10], 0).unwrap_err(),
            PclntabError::TooShort { len: 10 }
        );
        let mut header = vec![0u8; HEADER_SIZE];
        header[..4].copy_from_slice(&0xffff_fffau32.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(header.clone(), 0),
            Err(PclntabError::TooOld { .. })
        ));
        header[..4].copy_from_slice(&MAGIC_GO120.to_le_bytes());
        header[6] = 1;
        header[7] = 8;
        for field in 3..8 {
            header[8 + 8 * field..16 + 8 * field]
                .copy_from_slice(&(HEADER_SIZE as u64).to_le_bytes());
        }
        header.extend_from_slice(&[0; 4]);
        let table = Pclntab::parse(header.clone(), 0x1000).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.function_at(0x1000), None);
        assert!(table.frames_at(0x1000).is_empty());
        header[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Pclntab::parse(header, 0).is_err());
    }

    #[test]
    fn reads_varints() {
        assert_eq!(read_varint(&[0x05], 0), Some((5, 1)));
        assert_eq!(read_varint(&[0x80, 0x01], 0), Some((128, 2)));
        assert_eq!(read_varint(&[0x80], 0), None);
        assert_eq!(read_varint(&[0xff; 6], 0), None);
    }
}
