package commands

// Transactions are not served yet (SPEC §12.2). Until they are, nothing is
// ever half-run: a refused MULTI leaves the client in a state where every
// command up to its EXEC or DISCARD is answered with an error and never
// runs, as Redis does with a transaction it has flagged; EXEC then aborts
// and DISCARD leaves it quietly. RESET and a disconnect leave it too.

// MULTI: refused, and the transaction it opens discarded.
func (e *Engine) multi(c *Call) {
	c.Client.discarding = true
	c.Out.Error(errMultiRefused(string(c.Args[0])))
}

// EXEC: aborts a refused transaction.
func (e *Engine) exec(c *Call) {
	if !c.Client.discarding {
		c.Out.Error(msgExecNoMulti)
		return
	}
	c.Client.discarding = false
	c.Out.Error(msgExecAbort)
}

// DISCARD: leaves a refused transaction, +OK as after Redis's MULTI.
func (e *Engine) discard(c *Call) {
	if !c.Client.discarding {
		c.Out.Error(msgDiscardNoMulti)
		return
	}
	c.Client.discarding = false
	c.Out.OK()
}
