//go:build !linux

package delivery

import (
	"bufio"
	"errors"
)

// poller is the epoll read mode's, which needs Linux (poll_linux.go);
// elsewhere New falls back to goroutine mode.
type poller struct{}

func newPoller(*Gateway) (*poller, error) {
	return nil, errors.New("the epoll read mode needs Linux")
}

func (*poller) prepare(*conn, *bufio.Reader) *pollConn { return nil }
func (*poller) arm(*pollConn)                          {}
func (*poller) stop()                                  {}
func (*pollConn) shutdown()                            {}
