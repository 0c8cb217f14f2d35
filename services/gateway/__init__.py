"""The MCP gateway: agents' MCP traffic through a policy gate to upstream MCP servers, every
decision recorded in the ledger through the SDK."""
