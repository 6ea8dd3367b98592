// Package origintest holds the origin table that every call site of
// internal/origin tests against (the API's CORS answer, the gateway's
// WebSocket check), so that an origin one accepts the other accepts too.
package origintest

// Case is a configured origin list, an Origin header and whether it is
// allowed.
type Case struct {
	Conf   []string
	Origin string
	Want   bool
}

// Cases is the shared table.
var Cases = []Case{
	{[]string{"app.example.com"}, "https://app.example.com", true}, // bare host: any scheme, default port
	{[]string{"app.example.com"}, "http://app.example.com", true},
	{[]string{"app.example.com"}, "https://app.example.com:8443", false},
	{[]string{"app.example.com:8443"}, "https://app.example.com:8443", true},
	{[]string{"https://App.Example.com"}, "https://app.example.COM", true},     // case
	{[]string{"https://app.example.com:443"}, "https://app.example.com", true}, // default port
	{[]string{"https://app.example.com"}, "https://app.example.com:443", true},
	{[]string{"https://app.example.com/"}, "https://app.example.com", true}, // trailing slash
	{[]string{"https://app.example.com"}, "http://app.example.com", false},  // scheme
	{[]string{"https://app.example.com"}, "https://app.example.com:8443", false},
	{[]string{"https://app.example.com"}, "https://app.example.com.evil.com", false},
	{[]string{"http://localhost:3000"}, "http://localhost:3000", true},
	{[]string{"http://localhost:3000"}, "http://localhost:3001", false},
	{[]string{"https://app.example.com"}, "null", false},
	{[]string{"*"}, "https://anything.example", true},
}
