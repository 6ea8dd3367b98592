package pushfake

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// The dev app the fakes configure when Config names none.
const (
	DevTeamID      = "HERALDDEV1"
	DevKeyID       = "DEVKEY0001"
	DevTopic       = "dev.herald.app"
	DevProjectID   = "herald-dev"
	DevClientEmail = "herald-dev@herald-dev.iam.gserviceaccount.com"
)

// APNsApp is one signing key the fake APNs accepts, and the bundle id it
// may push to. A key belongs to its team: its tokens may push to every
// topic of every APNsApp of that team.
type APNsApp struct {
	TeamID string // required: the iss of the provider token
	KeyID  string // required: the kid of the provider token
	Topic  string // required: the bundle id (apns-topic)
	// PublicKey verifies the provider tokens. Nil: Start generates a key
	// pair and hands the private key out in Fakes.APNsKeys.
	PublicKey *ecdsa.PublicKey
}

// FCMApp is one service account the fake FCM accepts, and its project.
type FCMApp struct {
	ProjectID   string // required: the project sends go to
	ClientEmail string // required: the iss of the assertion
	// KeyID is the private_key_id; "" accepts an assertion with any kid.
	KeyID string
	// PublicKey verifies the assertions. Nil: Start generates a service
	// account and writes its JSON key file (Fakes.FCMAccounts).
	PublicKey *rsa.PublicKey
}

// Config configures Start. The zero value runs both fakes on loopback
// ports with one generated dev app each (DevTeamID/DevKeyID/DevTopic and
// DevProjectID/DevClientEmail).
type Config struct {
	// APNsAddr and FCMAddr are the listen addresses. "": 127.0.0.1:0.
	APNsAddr string
	FCMAddr  string
	// APNsApps are the keys the fake APNs accepts. Nil: one dev app.
	APNsApps []APNsApp
	// FCMApps are the service accounts the fake FCM accepts. Nil: one dev
	// app.
	FCMApps []FCMApp
	// Dir receives the generated files: ca.pem, AuthKey_<KEYID>.p8 and
	// service-account-<project>.json. "": a temporary directory that Close
	// removes.
	Dir string
	// RecordLimit is how many requests are kept. 0: DefaultRecordLimit.
	RecordLimit int
	// FCMTLS serves the fake FCM (sends and the token endpoint) over HTTPS
	// with the fake CA's certificate, HTTP/2 or HTTP/1.1 by ALPN, as Google
	// does. False: plain HTTP, which the SDK accepts through
	// option.WithEndpoint and the service account's token_uri.
	FCMTLS bool
	// StrictTokens refuses, as Apple does, device tokens that are neither
	// hex nor test-prefixed (400 BadDeviceToken / INVALID_ARGUMENT). False:
	// any token of letters, digits and -_.:~ (up to 512 bytes) is accepted.
	StrictTokens bool
	// MaxConcurrentStreams is the fake APNs's HTTP/2 stream limit per
	// connection. 0: 1000, Apple's.
	MaxConcurrentStreams uint32
	// Now is the clock the checks use. Nil: time.Now.
	Now func() time.Time
	// Logger receives the fakes' debug lines and server errors. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// APNsCredentials is a generated dev key, what a sender needs for token
// auth.
type APNsCredentials struct {
	TeamID  string
	KeyID   string
	Topic   string
	KeyPEM  []byte // the .p8 content (PKCS#8 PEM)
	KeyPath string // where the .p8 was written
}

// FCMCredentials is a generated dev service account.
type FCMCredentials struct {
	ProjectID       string
	ClientEmail     string
	CredentialsJSON []byte // the service-account key file; token_uri is the fake's
	CredentialsPath string // where it was written
}

// Fakes are the running fake providers.
type Fakes struct {
	// APNsURL is the fake APNs's base URL (https://127.0.0.1:port), the
	// apns2.Client Host.
	APNsURL string
	// FCMURL is the fake FCM's base URL (http://127.0.0.1:port, https
	// with Config.FCMTLS), without "/v1".
	FCMURL string
	// FCMEndpoint is the messaging endpoint for option.WithEndpoint
	// (FCMURL + "/v1").
	FCMEndpoint string
	// TokenURL is the OAuth2 token endpoint (FCMURL + "/token"), the
	// token_uri of the generated service accounts.
	TokenURL string
	// CAPEM is the certificate of the CA that signed the fake APNs's
	// certificate; CAPath is where it was written.
	CAPEM  []byte
	CAPath string
	// APNsKeys and FCMAccounts are the generated dev credentials, one per
	// app configured without a public key, in Config order.
	APNsKeys    []APNsCredentials
	FCMAccounts []FCMCredentials

	cfg     Config
	log     *slog.Logger
	ca      *authority
	rec     *recorder
	flaky   *flakySet
	apns    *apnsServer
	fcm     *fcmServer
	outages [2]atomic.Bool
	healed  sync.Map // token -> struct{}: answers as Deliver (Heal)
	servers []*http.Server
	wg      sync.WaitGroup
	tmpDir  string
	closed  sync.Once
}

// Start generates the CA, the server certificate and the dev credentials,
// and starts both fakes. ctx bounds the start only; Close stops them.
func Start(ctx context.Context, cfg Config) (f *Fakes, err error) {
	if cfg.RecordLimit < 0 {
		return nil, fmt.Errorf("pushfake: Config.RecordLimit %d is negative", cfg.RecordLimit)
	}
	if cfg.RecordLimit == 0 {
		cfg.RecordLimit = DefaultRecordLimit
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 1000
	}
	if cfg.APNsAddr == "" {
		cfg.APNsAddr = "127.0.0.1:0"
	}
	if cfg.FCMAddr == "" {
		cfg.FCMAddr = "127.0.0.1:0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.APNsApps == nil {
		cfg.APNsApps = []APNsApp{{TeamID: DevTeamID, KeyID: DevKeyID, Topic: DevTopic}}
	}
	if cfg.FCMApps == nil {
		cfg.FCMApps = []FCMApp{{ProjectID: DevProjectID, ClientEmail: DevClientEmail}}
	}
	for i, a := range cfg.APNsApps {
		if a.TeamID == "" || a.KeyID == "" || a.Topic == "" {
			return nil, fmt.Errorf("pushfake: Config.APNsApps[%d]: TeamID, KeyID and Topic are required", i)
		}
	}
	for i, a := range cfg.FCMApps {
		if a.ProjectID == "" || a.ClientEmail == "" {
			return nil, fmt.Errorf("pushfake: Config.FCMApps[%d]: ProjectID and ClientEmail are required", i)
		}
	}
	f = &Fakes{cfg: cfg, log: cfg.Logger, rec: newRecorder(cfg.RecordLimit), flaky: newFlakySet()}
	defer func() {
		if err != nil {
			_ = f.shutdown(ctx)
			f = nil
		}
	}()
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "herald-pushfake-"); err != nil {
			return f, fmt.Errorf("pushfake: %w", err)
		}
		f.tmpDir = dir
	} else if err = os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("pushfake: Config.Dir: %w", err)
	}
	if f.ca, err = newAuthority(time.Now()); err != nil {
		return f, err
	}
	f.CAPEM = f.ca.caPEM
	f.CAPath = filepath.Join(dir, "ca.pem")
	if err = os.WriteFile(f.CAPath, f.CAPEM, 0o600); err != nil {
		return f, fmt.Errorf("pushfake: %w", err)
	}

	apnsLn, err := net.Listen("tcp", cfg.APNsAddr)
	if err != nil {
		return f, fmt.Errorf("pushfake: Config.APNsAddr: %w", err)
	}
	fcmLn, err := net.Listen("tcp", cfg.FCMAddr)
	if err != nil {
		_ = apnsLn.Close()
		return f, fmt.Errorf("pushfake: Config.FCMAddr: %w", err)
	}
	f.APNsURL = "https://" + apnsLn.Addr().String()
	f.FCMURL = "http://" + fcmLn.Addr().String()
	if cfg.FCMTLS {
		f.FCMURL = "https://" + fcmLn.Addr().String()
	}
	f.FCMEndpoint = f.FCMURL + "/v1"
	f.TokenURL = f.FCMURL + "/token"

	apnsApps := append([]APNsApp(nil), cfg.APNsApps...)
	for i := range apnsApps {
		if apnsApps[i].PublicKey != nil {
			continue
		}
		if err = ctx.Err(); err != nil {
			break
		}
		p8, pub, gerr := GenerateAPNsKey()
		if gerr != nil {
			err = gerr
			break
		}
		apnsApps[i].PublicKey = pub
		c := APNsCredentials{TeamID: apnsApps[i].TeamID, KeyID: apnsApps[i].KeyID, Topic: apnsApps[i].Topic, KeyPEM: p8,
			KeyPath: filepath.Join(dir, "AuthKey_"+filepath.Base(apnsApps[i].KeyID)+".p8")}
		if err = os.WriteFile(c.KeyPath, p8, 0o600); err != nil {
			break
		}
		f.APNsKeys = append(f.APNsKeys, c)
	}
	fcmApps := append([]FCMApp(nil), cfg.FCMApps...)
	for i := range fcmApps {
		if err != nil || fcmApps[i].PublicKey != nil {
			continue
		}
		if err = ctx.Err(); err != nil {
			break
		}
		js, pub, kid, gerr := GenerateServiceAccount(fcmApps[i].ProjectID, fcmApps[i].ClientEmail, f.TokenURL)
		if gerr != nil {
			err = gerr
			break
		}
		fcmApps[i].PublicKey, fcmApps[i].KeyID = pub, kid
		c := FCMCredentials{ProjectID: fcmApps[i].ProjectID, ClientEmail: fcmApps[i].ClientEmail, CredentialsJSON: js,
			CredentialsPath: filepath.Join(dir, "service-account-"+filepath.Base(fcmApps[i].ProjectID)+".json")}
		if err = os.WriteFile(c.CredentialsPath, js, 0o600); err != nil {
			break
		}
		f.FCMAccounts = append(f.FCMAccounts, c)
	}
	if err != nil {
		_ = apnsLn.Close()
		_ = fcmLn.Close()
		return f, fmt.Errorf("pushfake: %w", err)
	}
	f.apns = newAPNsServer(f, apnsApps)
	f.fcm = newFCMServer(f, fcmApps)

	errLog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	var protocols http.Protocols
	protocols.SetHTTP2(true) // APNs speaks HTTP/2 only
	apnsSrv := &http.Server{
		Handler:           f.apns,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{f.ca.leaf}, MinVersion: tls.VersionTLS12},
		Protocols:         &protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(cfg.MaxConcurrentStreams)},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
		ErrorLog:          errLog,
	}
	fcmSrv := &http.Server{
		Handler:           f.fcm,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{f.ca.leaf}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
		ErrorLog:          errLog,
	}
	f.servers = []*http.Server{apnsSrv, fcmSrv}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		if err := apnsSrv.ServeTLS(apnsLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("pushfake: APNs server stopped", "err", err)
		}
	}()
	go func() {
		defer f.wg.Done()
		serve := func() error { return fcmSrv.Serve(fcmLn) }
		if cfg.FCMTLS {
			serve = func() error { return fcmSrv.ServeTLS(fcmLn, "", "") }
		}
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("pushfake: FCM server stopped", "err", err)
		}
	}()
	return f, nil
}

// closeGrace bounds how long Close waits for in-flight requests.
const closeGrace = 2 * time.Second

// Close stops both servers, closing every connection, waits for their
// goroutines and removes the temporary directory if Start made one.
func (f *Fakes) Close() error { return f.shutdown(context.Background()) }

// shutdown is Close, its grace period also ended by parent.
func (f *Fakes) shutdown(parent context.Context) error {
	var errs []error
	f.closed.Do(func() {
		// Let in-flight requests finish (a GOAWAY for HTTP/2), briefly;
		// then close whatever is left.
		ctx, cancel := context.WithTimeout(parent, closeGrace)
		for _, s := range f.servers {
			if err := s.Shutdown(ctx); err != nil {
				if err := s.Close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		cancel()
		f.wg.Wait()
		if f.tmpDir != "" {
			if err := os.RemoveAll(f.tmpDir); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// CertPool returns a pool holding the fake CA, for a client's RootCAs.
func (f *Fakes) CertPool() *x509.CertPool { return f.ca.pool.Clone() }

// TLSConfig returns a client TLS configuration that trusts the fake CA and
// offers HTTP/2.
func (f *Fakes) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: f.CertPool(), NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
}

// APNsTransport returns an HTTP/2-only transport that trusts the fake CA:
// what an APNs client (apns2.Client.HTTPClient) needs to reach the fake.
func (f *Fakes) APNsTransport() *http.Transport {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Transport{TLSClientConfig: f.TLSConfig(), Protocols: &p, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}
}

// SetOutage makes provider p (APNs or FCM; "" for both) fail every send
// while on, as in a provider outage: APNs answers 503 ServiceUnavailable,
// FCM 500 INTERNAL (not 503, which the firebase SDK retries four times
// inside one Send). Off restores the per-token behaviour.
func (f *Fakes) SetOutage(p Provider, on bool) {
	if p == "" || p == APNs {
		f.outages[0].Store(on)
	}
	if p == "" || p == FCM {
		f.outages[1].Store(on)
	}
}

func (f *Fakes) outage(p Provider) bool {
	if p == APNs {
		return f.outages[0].Load()
	}
	return f.outages[1].Load()
}

func (f *Fakes) now() time.Time { return f.cfg.Now() }

// Heal makes token behave as a plain token (delivered, 200) from now on,
// whatever its prefix: a test flips a down- token once "the provider
// recovers", e.g. to replay its dead letter.
func (f *Fakes) Heal(token string) { f.healed.Store(token, struct{}{}) }

// behaviourOf is BehaviourOf, but Deliver for a healed token.
func (f *Fakes) behaviourOf(token string) Behaviour {
	if _, ok := f.healed.Load(token); ok {
		return Deliver
	}
	b, _ := BehaviourOf(token)
	return b
}

// Pushes returns every kept record, oldest first.
func (f *Fakes) Pushes() []Record { return f.rec.snapshot(nil) }

// Received returns the kept records for device token, oldest first.
func (f *Fakes) Received(token string) []Record {
	return f.rec.snapshot(func(r *Record) bool { return r.Token == token })
}

// Delivered returns the kept records for token that were answered 200.
func (f *Fakes) Delivered(token string) []Record {
	return f.rec.snapshot(func(r *Record) bool { return r.Token == token && r.Status == http.StatusOK })
}

// Total is how many requests the fakes recorded since Start, including
// those the ring no longer keeps.
func (f *Fakes) Total() uint64 { return f.rec.count() }

// Reset forgets the kept records (Total keeps counting).
func (f *Fakes) Reset() { f.rec.reset() }

// AccessTokensIssued is how many OAuth2 access tokens the fake FCM issued.
func (f *Fakes) AccessTokensIssued() uint64 { return f.fcm.issued.Load() }

// Handler serves GET with {"pushes":[Record…]}, every kept record in
// arrival order: `herald dev`'s GET /v1/dev/pushes.
func (f *Fakes) Handler() http.Handler { return pushesHandler{f.rec} }
