//go:build unix

package notify

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// alive reports whether the peer of a stream connection has not closed
// it: a write to a closed connection may still succeed once, losing the
// message, so the output checks before it writes. It peeks at the socket
// without blocking: end of file means closed. Syslog has no
// acknowledgement, so a message written just as the receiver goes away
// can still be lost; this narrows that window to the moment of writing.
func alive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	up := true
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n == 0 && err == nil: // end of file
			up = false
		case err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			up = false
		}
		return true // never wait for data
	})
	return up && err == nil
}
