package commands

import (
	"bytes"
	"sort"
	"strings"

	"github.com/sessproxy/sessproxy/internal/glob"
)

// COMMAND [COUNT | LIST [FILTERBY …] | INFO [name …] | DOCS [name …] |
// GETKEYS command arg … | HELP]: the registry, as Redis 7 describes its
// own commands, so redis-cli, client libraries and tooling see exactly the
// commands served.
func (e *Engine) command(c *Call) {
	if len(c.Args) == 1 {
		e.commandInfos(c, e.sortedCommands())
		return
	}
	switch sub := string(bytes.ToUpper(c.Args[1])); {
	case sub == "COUNT" && len(c.Args) == 2:
		c.Out.Int(int64(len(e.registry)))
	case sub == "LIST":
		e.commandList(c)
	case sub == "INFO":
		if len(c.Args) == 2 {
			e.commandInfos(c, e.sortedCommands())
			return
		}
		c.Out.Array(len(c.Args) - 2)
		for _, n := range c.Args[2:] {
			if c.Out.Over() { // a name repeated to build a reply past the limit
				return
			}
			if cmd := e.registry[strings.ToLower(string(n))]; cmd != nil {
				e.commandInfo(c, cmd)
			} else {
				c.Out.NullArray()
			}
		}
	case sub == "DOCS":
		e.commandDocs(c)
	case sub == "GETKEYS" && len(c.Args) >= 3:
		keys, msg := e.commandKeys(c.Args[2:])
		if msg != "" {
			c.Out.Error(msg)
			return
		}
		c.Out.Array(len(keys))
		for _, k := range keys {
			c.Out.Bulk(k)
		}
	case sub == "HELP" && len(c.Args) == 2:
		help := []string{
			"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"(no subcommand)", "    Return details about all commands sessproxy serves.",
			"COUNT", "    Return the total number of commands sessproxy serves.",
			"LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]", "    Return the names of the commands, filtered.",
			"INFO [<command-name> ...]", "    Return details about the given commands, or all of them.",
			"DOCS [<command-name> ...]", "    Return the documentation of the given commands, or all of them.",
			"GETKEYS <full-command>", "    Return the keys of a full command.",
			"HELP", "    Print this help.",
		}
		c.Out.Array(len(help))
		for _, h := range help {
			c.Out.Simple(h)
		}
	default:
		c.Out.Error(errUnknownSubcommand("COMMAND", string(c.Args[1])))
	}
}

func (e *Engine) sortedCommands() []*Command {
	cmds := make([]*Command, 0, len(e.registry))
	for _, cmd := range e.registry {
		cmds = append(cmds, cmd)
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

func (e *Engine) commandInfos(c *Call, cmds []*Command) {
	c.Out.Array(len(cmds))
	for _, cmd := range cmds {
		e.commandInfo(c, cmd)
	}
}

// commandInfo writes one COMMAND INFO entry in Redis 7's ten-field shape:
// name, arity, flags, first key, last key, step, ACL categories, tips, key
// specifications (none: the positions say where the keys are), and
// subcommands.
func (e *Engine) commandInfo(c *Call, cmd *Command) {
	var flags []string
	if cmd.Flags&flagWrite != 0 {
		flags = append(flags, "write")
	}
	if cmd.Flags&flagRead != 0 {
		flags = append(flags, "readonly")
	}
	if cmd.Flags&flagNoAuth != 0 {
		flags = append(flags, "no_auth")
	}
	if cmd.Flags&flagAdmin != 0 {
		flags = append(flags, "admin")
	}
	if cmd.Flags&flagNoTx != 0 {
		flags = append(flags, "no_multi")
	}
	subs := subcommands[cmd.Name]
	own := flags
	if cmd.Keys != nil && len(subs) == 0 {
		// A container's keys are its subcommands', at fixed positions.
		own = append(own[:len(own):len(own)], "movablekeys")
	}
	c.Out.Array(10)
	c.Out.BulkString(cmd.Name)
	c.Out.Int(int64(cmd.Arity))
	writeSimpleSet(c, own)
	c.Out.Int(int64(cmd.FirstKey))
	c.Out.Int(int64(cmd.LastKey))
	c.Out.Int(int64(cmd.Step))
	writeSimpleSet(c, aclCategories(cmd))
	c.Out.Set(0)   // tips
	c.Out.Array(0) // key specifications
	c.Out.Array(len(subs))
	for _, s := range subs {
		c.Out.Array(10)
		c.Out.BulkString(s.name)
		c.Out.Int(int64(s.arity))
		writeSimpleSet(c, flags)
		c.Out.Int(int64(s.firstKey))
		c.Out.Int(int64(s.lastKey))
		c.Out.Int(int64(s.step))
		writeSimpleSet(c, aclCategories(cmd))
		c.Out.Set(0)
		c.Out.Array(0)
		c.Out.Array(0)
	}
}

func writeSimpleSet(c *Call, items []string) {
	c.Out.Set(len(items))
	for _, s := range items {
		c.Out.Simple(s)
	}
}

// aclCategories are a command's ACL categories, as Redis names them, from
// its flags and its docs group ("@sessions" for SESS.*).
func aclCategories(cmd *Command) []string {
	var cats []string
	if cmd.Flags&flagWrite != 0 {
		cats = append(cats, "@write")
	}
	if cmd.Flags&flagRead != 0 {
		cats = append(cats, "@read")
	}
	if cmd.Flags&flagAdmin != 0 {
		cats = append(cats, "@admin", "@dangerous")
	}
	d, _ := docOf(cmd.Name)
	switch d.group {
	case "string":
		cats = append(cats, "@string")
	case "hash":
		cats = append(cats, "@hash")
	case "generic":
		cats = append(cats, "@keyspace")
	case "scripting":
		cats = append(cats, "@scripting")
	case "transactions":
		cats = append(cats, "@transaction")
	case "connection":
		cats = append(cats, "@connection")
	case "sessions":
		cats = append(cats, "@sessions")
	}
	return cats
}

// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
func (e *Engine) commandList(c *Call) {
	keep := func(*Command) bool { return true }
	switch {
	case len(c.Args) == 2:
	case len(c.Args) == 5 && bytes.EqualFold(c.Args[2], []byte("FILTERBY")):
		arg := string(c.Args[4])
		switch string(bytes.ToUpper(c.Args[3])) {
		case "MODULE":
			keep = func(*Command) bool { return false } // no modules
		case "ACLCAT":
			cat := "@" + strings.TrimPrefix(strings.ToLower(arg), "@")
			keep = func(cmd *Command) bool {
				for _, x := range aclCategories(cmd) {
					if x == cat {
						return true
					}
				}
				return false
			}
		case "PATTERN":
			keep = func(cmd *Command) bool { return glob.MatchFold(arg, cmd.Name) }
		default:
			c.Out.Error(msgSyntax)
			return
		}
	default:
		c.Out.Error(msgSyntax)
		return
	}
	var names []string
	for _, cmd := range e.sortedCommands() {
		if keep(cmd) {
			names = append(names, cmd.Name)
		}
	}
	c.Out.Array(len(names))
	for _, n := range names {
		c.Out.BulkString(n)
	}
}

// COMMAND DOCS [name …]: a map of name → docs (RESP2: a flat array), the
// named commands that exist, or every command.
func (e *Engine) commandDocs(c *Call) {
	var cmds []*Command
	if len(c.Args) == 2 {
		cmds = e.sortedCommands()
	} else {
		for _, n := range c.Args[2:] {
			if cmd := e.registry[strings.ToLower(string(n))]; cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	c.Out.Map(len(cmds))
	for _, cmd := range cmds {
		if c.Out.Over() { // a name repeated to build a reply past the limit
			return
		}
		d, _ := docOf(cmd.Name)
		c.Out.BulkString(cmd.Name)
		writeDoc(c.Out, cmd.Name, d)
	}
}

// commandKeys is COMMAND GETKEYS: the key arguments of a full command, or
// Redis's error.
func (e *Engine) commandKeys(args [][]byte) ([][]byte, string) {
	cmd := e.registry[strings.ToLower(string(args[0]))]
	switch {
	case cmd == nil:
		return nil, msgGetKeysInvalidCommand
	case !arityOK(cmd.Arity, len(args)):
		return nil, msgGetKeysArity
	}
	var pos []int
	if cmd.Keys != nil {
		var ok bool
		if pos, ok = cmd.Keys(args); !ok {
			return nil, msgGetKeysInvalidArgs
		}
	} else {
		pos = keyPositions(cmd.FirstKey, cmd.LastKey, cmd.Step, len(args))
	}
	if len(pos) == 0 {
		return nil, msgGetKeysNone
	}
	keys := make([][]byte, len(pos))
	for i, p := range pos {
		keys[i] = args[p]
	}
	return keys, ""
}

// keyPositions follows COMMAND INFO's first key, last key (negative: from
// the end) and step over n arguments.
func keyPositions(first, last, step, n int) []int {
	if first <= 0 || step <= 0 {
		return nil
	}
	if last < 0 {
		last += n
	}
	var pos []int
	for i := first; i <= last && i < n; i += step {
		pos = append(pos, i)
	}
	return pos
}

// scriptKeys are the keys of EVAL, EVALSHA, their _RO forms, FCALL and
// FCALL_RO: numkeys, then the keys.
func scriptKeys(args [][]byte) ([]int, bool) {
	n, ok := parseInt(args[2])
	if !ok || n < 0 || n > int64(len(args)-3) {
		return nil, false
	}
	pos := make([]int, n)
	for i := range pos {
		pos[i] = 3 + i
	}
	return pos, true
}

// memoryKeys is the key of MEMORY USAGE key; other subcommands have none.
func memoryKeys(args [][]byte) ([]int, bool) {
	if bytes.EqualFold(args[1], []byte("USAGE")) && len(args) >= 3 {
		return []int{2}, true
	}
	return nil, true
}
