//! Checking a library file before the dynamic loader maps it.
//!
//! The loader maps a library's segments straight from the file. When the file is shorter than its
//! headers say (a half-finished copy), the first touch of a page past its end kills the process
//! with `SIGBUS` before anything can be printed. [`check`] reads the headers only, never the whole
//! file, and refuses a file that is empty, is not an ELF, Mach-O or PE file, or whose header
//! tables, segments or sections reach past its end.

use std::fs::File;
use std::path::Path;

use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use object::{Endianness, FileKind, Object, ObjectSection, ObjectSegment, ReadCache, ReadRef};

/// Why a file cannot be handed to the dynamic loader.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FileError {
    /// The file cannot be opened or its size read.
    #[error("cannot be opened: {0}")]
    Open(String),
    /// The file has no bytes.
    #[error("is empty (a half-finished copy?); copy it again or remove it")]
    Empty,
    /// The file does not start with an ELF, Mach-O or PE header.
    #[error("is not a shared library: its {len} bytes start with no ELF, Mach-O or PE header")]
    NotALibrary {
        /// The file's size in bytes.
        len: u64,
    },
    /// A header table, segment or section lies (partly) past the end of the file.
    #[error(
        "is damaged or truncated: its {what} at offset {start}..{end} lies past the end of the \
         {len}-byte file (a half-finished copy?); copy it again or remove it"
    )]
    PastEnd {
        /// What the headers place there.
        what: &'static str,
        /// Where it starts in the file.
        start: u64,
        /// Where it ends in the file (exclusive).
        end: u64,
        /// The file's size in bytes.
        len: u64,
    },
    /// The headers themselves cannot be read.
    #[error(
        "is damaged or truncated: {reason} in the {len}-byte file (a half-finished copy?); copy \
         it again or remove it"
    )]
    Malformed {
        /// What the parser could not read.
        reason: String,
        /// The file's size in bytes.
        len: u64,
    },
}

/// Checks that the file at `path` is a complete library: every range its headers name lies
/// inside the file.
pub fn check(path: &Path) -> Result<(), FileError> {
    let file = File::open(path).map_err(|e| FileError::Open(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| FileError::Open(e.to_string()))?
        .len();
    check_data(&ReadCache::new(file), len)
}

/// [`check`] on the `len` bytes of `data`.
fn check_data<'a, R: ReadRef<'a>>(data: R, len: u64) -> Result<(), FileError> {
    if len == 0 {
        return Err(FileError::Empty);
    }
    match FileKind::parse(data).map_err(|_| FileError::NotALibrary { len })? {
        FileKind::Elf32 => check_elf::<FileHeader32<Endianness>, R>(data, len)?,
        FileKind::Elf64 => check_elf::<FileHeader64<Endianness>, R>(data, len)?,
        FileKind::MachO32 | FileKind::MachO64 | FileKind::Pe32 | FileKind::Pe64 => {
            let file = object::File::parse(data).map_err(malformed(len))?;
            for segment in file.segments() {
                within("segment", segment.file_range(), len)?;
            }
            for range in file.sections().filter_map(|s| s.file_range()) {
                within("section", range, len)?;
            }
        }
        // A truncated universal binary loses the end of its last slice.
        FileKind::MachOFat32 => {
            for arch in MachOFatFile32::parse(data)
                .map_err(malformed(len))?
                .arches()
            {
                within("architecture slice", arch.file_range(), len)?;
            }
        }
        FileKind::MachOFat64 => {
            for arch in MachOFatFile64::parse(data)
                .map_err(malformed(len))?
                .arches()
            {
                within("architecture slice", arch.file_range(), len)?;
            }
        }
        // COFF objects and dyld caches: the loader refuses those with a message of its own.
        _ => {}
    }
    Ok(())
}

/// Checks an ELF file's program header table, segments, section header table and sections, in
/// that order: the segments are what the loader maps.
fn check_elf<'a, Elf, R>(data: R, len: u64) -> Result<(), FileError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let header = Elf::parse(data).map_err(malformed(len))?;
    let endian = header.endian().map_err(malformed(len))?;
    // Offset 0 means the file has no such table.
    let table = |offset: Elf::Word, count: u32, entry_size: u16| match offset.into() {
        0 => (0, 0),
        offset => (offset, u64::from(count) * u64::from(entry_size)),
    };
    let phnum = header.phnum(endian, data).map_err(malformed(len))?;
    let phentsize = header.e_phentsize(endian);
    within(
        "program header table",
        table(header.e_phoff(endian), phnum, phentsize),
        len,
    )?;
    for segment in header
        .program_headers(endian, data)
        .map_err(malformed(len))?
    {
        within("segment", segment.file_range(endian), len)?;
    }
    let shnum = header.shnum(endian, data).map_err(malformed(len))?;
    let shentsize = header.e_shentsize(endian);
    within(
        "section header table",
        table(header.e_shoff(endian), shnum, shentsize),
        len,
    )?;
    let sections = header
        .section_headers(endian, data)
        .map_err(malformed(len))?;
    for range in sections.iter().filter_map(|s| s.file_range(endian)) {
        within("section", range, len)?;
    }
    Ok(())
}

/// Turns the parser's reason into [`FileError::Malformed`] for a file of `len` bytes.
fn malformed(len: u64) -> impl Fn(object::Error) -> FileError {
    move |e| {
        let reason = e.to_string();
        let mut chars = reason.chars();
        FileError::Malformed {
            reason: chars.next().map_or(String::new(), |first| {
                first.to_lowercase().chain(chars).collect()
            }),
            len,
        }
    }
}

/// Whether the `(offset, size)` range of `what` lies inside a file of `len` bytes.
fn within(what: &'static str, (start, size): (u64, u64), len: u64) -> Result<(), FileError> {
    let end = start.saturating_add(size);
    if end <= len {
        Ok(())
    } else {
        Err(FileError::PastEnd {
            what,
            start,
            end,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// This test binary: a real executable with segments and sections, on every platform.
    fn own_binary() -> (std::path::PathBuf, Vec<u8>) {
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    /// The first `n` bytes of this test binary.
    fn own_binary_start(n: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        let file = File::open(std::env::current_exe().unwrap()).unwrap();
        file.take(n).read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_complete_library_passes() {
        let (path, bytes) = own_binary();
        assert_eq!(check(&path), Ok(()));
        assert_eq!(check_data(bytes.as_slice(), bytes.len() as u64), Ok(()));
    }

    #[test]
    fn a_truncated_copy_is_refused_with_its_sizes() {
        let (_, bytes) = own_binary();
        for cut in [5 * 1024, 64 * 1024, bytes.len() / 2, bytes.len() - 1] {
            let err = check_data(&bytes[..cut], cut as u64).unwrap_err();
            let message = err.to_string();
            let FileError::PastEnd { end, len, .. } = err else {
                panic!("{cut}: {message}");
            };
            assert_eq!(len, cut as u64);
            assert!(end > len, "{message}");
            assert!(
                message.starts_with("is damaged or truncated: its "),
                "{message}"
            );
            assert!(
                message.ends_with(&format!(
                    " lies past the end of the {cut}-byte file (a half-finished copy?); copy it \
                     again or remove it"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn a_truncated_file_on_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.so");
        std::fs::write(&path, own_binary_start(5120)).unwrap();
        assert!(matches!(
            check(&path),
            Err(FileError::PastEnd { len: 5120, .. })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_cut_inside_the_elf_header_is_malformed() {
        assert_eq!(
            check_data(own_binary_start(40).as_slice(), 40)
                .unwrap_err()
                .to_string(),
            "is damaged or truncated: invalid ELF header size or alignment in the 40-byte file \
             (a half-finished copy?); copy it again or remove it"
        );
    }

    #[test]
    fn empty_text_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.so");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(check(&empty), Err(FileError::Empty));
        let text = dir.path().join("text.so");
        std::fs::write(&text, "this is not a library\n").unwrap();
        assert_eq!(
            check(&text).unwrap_err().to_string(),
            "is not a shared library: its 22 bytes start with no ELF, Mach-O or PE header"
        );
        assert!(matches!(
            check(&dir.path().join("missing.so")),
            Err(FileError::Open(_))
        ));
    }
}
