//go:build !linux

package proxy

import "errors"

// Event loops use epoll: Linux only.

type loop struct{}

func (s *Server) openLoops() error {
	if s.opts.EventLoops > 0 { // 0, the default, means none here
		return errors.New("server.event_loops needs Linux (epoll)")
	}
	return nil
}

func (s *Server) closeLoops()                           {}
func (s *Server) acceptToLoops(ln *drainListener) error { return nil }
func (l *loop) run() error                              { return nil }
func (l *loop) wakeUp()                                 {}
func (l *loop) abort()                                  {}
