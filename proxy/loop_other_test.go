//go:build !linux

package proxy

func (s *Server) loopsMidRequest() bool { return false }
