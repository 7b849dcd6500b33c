package metrics

// Every body the HTTP endpoints answer with.
const (
	msgHealthy  = "ok"
	msgReady    = "ready"
	msgNotReady = "not ready:" // followed by why
)
