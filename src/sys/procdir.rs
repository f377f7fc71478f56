//! An open `/proc`: a process's files are opened relative to it, so a scan
//! of thousands of processes does not walk `/proc` from `/` each time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{Pid, cvt};

pub struct ProcDir(OwnedFd);

impl ProcDir {
    pub fn open() -> io::Result<ProcDir> {
        // SAFETY: a NUL-terminated path literal and plain flags.
        let fd = cvt(unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: the fd is new and ours.
        Ok(ProcDir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn raw(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }

    /// Reads `PID/NAME` with one `read`: procfs hands a small file over
    /// whole, so no second read is spent on finding the end.
    pub fn read(&self, pid: Pid, name: &str, buf: &mut [u8]) -> io::Result<usize> {
        let mut path = [0u8; 64];
        let mut digits = [0u8; 12];
        let mut n = pid.unsigned_abs();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        if d.len() + 1 + name.len() + 1 > path.len() {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        path[..d.len()].copy_from_slice(d);
        path[d.len()] = b'/';
        path[d.len() + 1..d.len() + 1 + name.len()].copy_from_slice(name.as_bytes());
        // path[end] is already 0: the string is NUL-terminated.
        // SAFETY: path is NUL-terminated inside its buffer; dirfd is open.
        let fd = cvt(unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: the fd is new and ours; it is closed when `file` drops.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: buf is valid for writes of its length.
        let got = unsafe { libc::read(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(got as usize)
    }
}
