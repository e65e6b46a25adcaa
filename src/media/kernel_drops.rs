//! Media capture, beside the socket: datagrams the kernel dropped before
//! callrec could read them (its receive buffer was full). On Linux the
//! socket is asked to tell (`SO_RXQ_OVFL`): each datagram read (see `batch`)
//! then carries the socket's running count of drops, which the media task
//! turns into a counter and a warning. Elsewhere datagrams come without it.

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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::SocketAddr;

    use std::net::UdpSocket;

    use super::*;
    use crate::media::batch::BatchReceiver;

    #[test]
    fn datagrams_the_kernel_dropped_are_counted() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap(); // the kernel's minimum: a few datagrams
        assert!(enable(&socket));
        socket.set_nonblocking(true).unwrap();
        socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        let socket: UdpSocket = socket.into();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(&[0x80; 172], socket.local_addr().unwrap()).unwrap();
        }
        // Datagrams carry the count as it stood when they were queued: those
        // queued before the buffer filled carry none.
        let mut batch = BatchReceiver::new();
        let mut read = 0;
        // Loopback queues a datagram before `send_to` returns.
        let sender_addr = sender.local_addr().unwrap();
        while batch.receive(&socket).is_ok() {
            for (bytes, from, _) in batch.datagrams() {
                assert_eq!((bytes.len(), from), (172, sender_addr));
                read += 1;
            }
        }
        sender.send_to(&[0x80; 172], socket.local_addr().unwrap()).unwrap();
        assert_eq!(batch.receive(&socket).unwrap(), 1);
        let (_, _, dropped) = batch.datagrams().next().unwrap();
        let dropped = dropped.expect("the kernel tells its drops");
        assert!(dropped > 100, "200 datagrams into a 4 KiB buffer: {dropped} dropped");
        assert_eq!(read + dropped, 200, "every datagram read or counted as dropped");
    }
}
