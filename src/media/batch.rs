//! Media capture, beside the socket: many datagrams per system call. On
//! Linux the media task reads what waits in its socket with `recvmmsg`, up to
//! `BATCH` datagrams at a time, each with its source and the kernel's count of
//! drops (`SO_RXQ_OVFL`, see `kernel_drops`); elsewhere one at a time. The
//! buffers are allocated once, so a batch allocates nothing. (libc directly:
//! quinn-udp does not hand out the drop count, and nix's `recvmmsg` loses it
//! after the first batch without drops.)
//!
//! The socket is a plain non-blocking one, not registered with tokio's
//! reactor: a registered socket wakes a parked worker for every datagram,
//! which is the cost the timed drain exists to avoid.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Datagrams read per system call.
pub const BATCH: usize = 256;
/// Longest datagram kept whole; RTP over Ethernet is far shorter.
pub const MAX_DATAGRAM: usize = 2048;

/// One datagram of a batch.
#[derive(Debug, Clone, Copy)]
struct Received {
    len: usize,
    from: SocketAddr,
    /// The socket's running count of drops, when the kernel told it.
    dropped: Option<u32>,
}

/// Reads datagrams a batch at a time into buffers it owns.
pub struct BatchReceiver {
    buffers: Vec<[u8; MAX_DATAGRAM]>,
    received: Vec<Received>,
    #[cfg(target_os = "linux")]
    headers: linux::Headers,
}

impl Default for BatchReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchReceiver {
    pub fn new() -> Self {
        BatchReceiver {
            buffers: vec![[0u8; MAX_DATAGRAM]; BATCH],
            received: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            headers: linux::Headers::new(),
        }
    }

    /// Reads what waits in the non-blocking `socket`, at most one batch: the
    /// number read; `WouldBlock` when nothing waits. `datagrams` then hands
    /// them out.
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        self.read(socket)?;
        Ok(self.received.len())
    }

    /// The datagrams the last `receive` read, in order: each one's bytes,
    /// source, and the kernel's count of drops when it told it.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr, Option<u32>)> + '_ {
        self.received
            .iter()
            .zip(&self.buffers)
            .map(|(datagram, buffer)| (&buffer[..datagram.len], datagram.from, datagram.dropped))
    }

    #[cfg(target_os = "linux")]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        linux::recvmmsg(socket.as_raw_fd(), &mut self.headers, &mut self.buffers, &mut self.received)
    }

    #[cfg(not(target_os = "linux"))]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let (len, from) = socket.recv_from(&mut self.buffers[0])?;
        self.received.push(Received { len, from, dropped: None });
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::os::fd::RawFd;

    use super::{Received, BATCH, MAX_DATAGRAM};

    /// What `recvmmsg` fills: a header, a source address and room for the
    /// drop count per datagram. (nix's `recvmmsg` keeps the lengths the
    /// kernel wrote back from one call to the next, so after a batch without
    /// drops it would never see a drop count again: these are set anew on
    /// every call.)
    pub struct Headers {
        headers: Vec<libc::mmsghdr>,
        iovecs: Vec<libc::iovec>,
        addresses: Vec<libc::sockaddr_storage>,
        /// `CMSG_SPACE(4)` is 24 bytes on 64-bit Linux; u64 keeps it aligned.
        controls: Vec<[u64; 4]>,
    }

    // SAFETY: the raw pointers in the headers are written afresh before
    // every call, into vectors the struct owns; nothing is shared.
    unsafe impl Send for Headers {}

    impl Headers {
        pub fn new() -> Self {
            // SAFETY: zeroed plain C structs are valid values.
            unsafe {
                Headers {
                    headers: vec![zeroed(); BATCH],
                    iovecs: vec![zeroed(); BATCH],
                    addresses: vec![zeroed(); BATCH],
                    controls: vec![[0; 4]; BATCH],
                }
            }
        }
    }

    pub fn recvmmsg(
        fd: RawFd,
        headers: &mut Headers,
        buffers: &mut [[u8; MAX_DATAGRAM]],
        received: &mut Vec<Received>,
    ) -> io::Result<()> {
        let Headers { headers, iovecs, addresses, controls } = headers;
        let count = BATCH.min(buffers.len());
        for index in 0..count {
            iovecs[index] = libc::iovec { iov_base: buffers[index].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            let header = &mut headers[index];
            header.msg_len = 0;
            header.msg_hdr.msg_name = (&mut addresses[index] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut iovecs[index];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = controls[index].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = size_of::<[u64; 4]>() as _;
            header.msg_hdr.msg_flags = 0;
        }
        // SAFETY: `count` headers, each pointing into live buffers of the
        // lengths given, all owned by the caller for the call's duration.
        let read = unsafe {
            libc::recvmmsg(fd, headers.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if read < 0 {
            return Err(io::Error::last_os_error());
        }
        for (header, address) in headers.iter().zip(addresses.iter()).take(read as usize) {
            // SAFETY: the kernel wrote `msg_namelen` bytes of the address.
            let source = unsafe { socket2::SockAddr::new(*address, header.msg_hdr.msg_namelen) };
            let Some(from) = source.as_socket() else {
                continue; // not an IP source: nothing to route
            };
            // SAFETY: the control messages are walked with the kernel's own
            // macros, within the `msg_controllen` it wrote back; the count
            // is read unaligned.
            let dropped = unsafe {
                let mut dropped = None;
                let mut control = libc::CMSG_FIRSTHDR(&header.msg_hdr);
                while !control.is_null() {
                    if (*control).cmsg_level == libc::SOL_SOCKET && (*control).cmsg_type == libc::SO_RXQ_OVFL {
                        dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(control).cast::<u32>()));
                    }
                    control = libc::CMSG_NXTHDR(&header.msg_hdr, control);
                }
                dropped
            };
            received.push(Received { len: (header.msg_len as usize).min(MAX_DATAGRAM), from, dropped });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_every_waiting_datagram_with_its_source() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let senders: Vec<_> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for round in 0..20u8 {
            for (index, sender) in senders.iter().enumerate() {
                sender.send_to(&[round, index as u8], socket.local_addr().unwrap()).unwrap();
            }
        }
        let mut batch = BatchReceiver::new();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 60 && std::time::Instant::now() < deadline {
            match batch.receive(&socket) {
                Ok(_) => seen.extend(batch.datagrams().map(|(bytes, from, _)| (bytes.to_vec(), from))),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(seen.len(), 60);
        for (bytes, from) in &seen {
            assert_eq!(*from, senders[usize::from(bytes[1])].local_addr().unwrap());
        }
        let firsts: Vec<u8> = seen.iter().filter(|(bytes, _)| bytes[1] == 0).map(|(bytes, _)| bytes[0]).collect();
        assert_eq!(firsts, (0..20).collect::<Vec<_>>(), "each source in order");
    }
}
