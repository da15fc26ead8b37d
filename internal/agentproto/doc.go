// Package agentproto is the plugin side of the Zabbix agent 2
// loadable-plugin protocol, as spoken by agent 2 6.0 and 7.0: length-prefixed
// JSON frames over the Unix socket the agent passes as the plugin's first
// argument, the message types, the configuration tree, and a serve loop.
//
// The agent starts the plugin twice: a registration process (Register,
// Validate, Terminate) and, on the first item request, an operational
// process (Configure, Start, Export..., Terminate). Both run the same loop:
//
//	nc, _ := net.Dial("unix", os.Args[1])
//	conn := agentproto.NewConn(nc)
//	srv := &agentproto.Server{Name: "Example", Handler: h}
//	err := srv.Serve(conn) // nil after Terminate or when the agent hangs up
//
// While serving, the plugin logs only through Conn.Logger (log requests to
// the agent's log): the agent discards or buffers the plugin's stdout.
package agentproto
