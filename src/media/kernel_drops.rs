//! Media capture, beside the socket: datagrams the kernel dropped before
//! callrec could read them (its receive buffer was full). On Linux the
//! socket is asked to tell (`SO_RXQ_OVFL`): each datagram read then carries
//! the socket's running count of drops, which the media task turns into a
//! counter and a warning. Elsewhere datagrams are read without it.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Asks the kernel to report drops with every datagram; `false` if it cannot.
pub fn enable(socket: &socket2::Socket) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        set == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Reads one datagram without waiting: its length, its source, and the
/// socket's count of drops so far when the kernel told it.
pub fn try_recv_from(socket: &UdpSocket, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u32>)> {
    #[cfg(target_os = "linux")]
    {
        socket.try_io(tokio::io::Interest::READABLE, || recvmsg(socket, buffer))
    }
    #[cfg(not(target_os = "linux"))]
    {
        socket.try_recv_from(buffer).map(|(len, from)| (len, from, None))
    }
}

#[cfg(target_os = "linux")]
fn recvmsg(socket: &UdpSocket, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u32>)> {
    use std::os::fd::AsRawFd;
    // SAFETY: zeroed plain C structs are valid; every pointer handed to the
    // kernel points into a live local or `buffer`, with its true length; the
    // control messages are walked with the kernel's own macros, within
    // `msg_controllen`, and the drop count read unaligned.
    unsafe {
        let mut address: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        let mut control = [0u64; 8];
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_name = (&mut address as *mut libc::sockaddr_storage).cast();
        message.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        let len = libc::recvmsg(socket.as_raw_fd(), &mut message, 0);
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut dropped = None;
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SO_RXQ_OVFL {
                dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<u32>()));
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
        let from = socket2::SockAddr::new(address, message.msg_namelen)
            .as_socket()
            .ok_or_else(|| io::Error::other("a datagram from an address that is not IP"))?;
        Ok((len as usize, from, dropped))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_the_kernel_dropped_are_counted() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap(); // the kernel's minimum: a few datagrams
        assert!(enable(&socket));
        socket.set_nonblocking(true).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        let socket = UdpSocket::from_std(socket.into()).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(&[0x80; 172], socket.local_addr().unwrap()).unwrap();
        }
        // Datagrams carry the count as it stood when they were queued: those
        // queued before the buffer filled carry none.
        let mut buffer = [0u8; 2048];
        let mut read = 0;
        socket.readable().await.unwrap();
        while let Ok((len, from, _)) = try_recv_from(&socket, &mut buffer) {
            assert_eq!((len, from), (172, sender.local_addr().unwrap()));
            read += 1;
        }
        sender.send_to(&[0x80; 172], socket.local_addr().unwrap()).unwrap();
        socket.readable().await.unwrap();
        let (_, _, dropped) = try_recv_from(&socket, &mut buffer).unwrap();
        let dropped = dropped.expect("the kernel tells its drops");
        assert!(dropped > 100, "200 datagrams into a 4 KiB buffer: {dropped} dropped");
        assert_eq!(read + dropped, 200, "every datagram read or counted as dropped");
    }
}
