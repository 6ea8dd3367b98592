package pushfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// authority is the CA generated at Start and the server certificate it
// signed for 127.0.0.1, ::1 and localhost.
type authority struct {
	caPEM []byte
	pool  *x509.CertPool
	leaf  tls.Certificate
}

func newAuthority(now time.Time) (*authority, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pushfake: CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Herald pushfake CA", Organization: []string{"Herald dev"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pushfake: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pushfake: CA certificate: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pushfake: server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pushfake: server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &authority{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool:  pool,
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// GenerateAPNsKey makes a P-256 signing key in the form Apple hands out for
// token auth: a PKCS#8 PEM "PRIVATE KEY" block, the content of an
// AuthKey_<KEYID>.p8 file. It returns the PEM and the public half, which is
// what an APNsApp needs.
func GenerateAPNsKey() (p8 []byte, pub *ecdsa.PublicKey, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pushfake: APNs key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pushfake: APNs key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &key.PublicKey, nil
}

// APNsPublicKey parses a .p8 file's content and returns its public key, so
// an APNsApp can be configured from the same file a sender signs with.
func APNsPublicKey(p8 []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(p8)
	if block == nil {
		return nil, errors.New("pushfake: APNs key: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pushfake: APNs key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("pushfake: APNs key: not a P-256 ECDSA key")
	}
	return &ec.PublicKey, nil
}

// ServiceAccount is the content of a Google service-account JSON key file,
// the fields the Google auth libraries read.
type ServiceAccount struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
}

// GenerateServiceAccount makes a service-account key file for projectID and
// clientEmail whose token_uri is tokenURI (the fake's token endpoint), with a
// fresh 2048-bit RSA key. It returns the JSON, the public key and the key id
// (private_key_id), which is what an FCMApp needs.
func GenerateServiceAccount(projectID, clientEmail, tokenURI string) (jsonKey []byte, pub *rsa.PublicKey, keyID string, err error) {
	if projectID == "" || clientEmail == "" || tokenURI == "" {
		return nil, nil, "", errors.New("pushfake: service account: projectID, clientEmail and tokenURI are required")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pushfake: service account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pushfake: service account key: %w", err)
	}
	var id [20]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, "", fmt.Errorf("pushfake: service account key id: %w", err)
	}
	keyID = hex.EncodeToString(id[:])
	sa := ServiceAccount{
		Type:         "service_account",
		ProjectID:    projectID,
		PrivateKeyID: keyID,
		PrivateKey:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail:  clientEmail,
		ClientID:     "100000000000000000001",
		AuthURI:      "https://accounts.google.com/o/oauth2/auth",
		TokenURI:     tokenURI,
	}
	jsonKey, err = json.MarshalIndent(sa, "", "  ")
	if err != nil {
		return nil, nil, "", fmt.Errorf("pushfake: service account: %w", err)
	}
	return jsonKey, &key.PublicKey, keyID, nil
}

// ServiceAccountPublicKey parses a service-account JSON key file and returns
// what an FCMApp needs from it: project id, client email, key id and public
// key.
func ServiceAccountPublicKey(jsonKey []byte) (FCMApp, error) {
	var sa ServiceAccount
	if err := json.Unmarshal(jsonKey, &sa); err != nil {
		return FCMApp{}, fmt.Errorf("pushfake: service account: %w", err)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return FCMApp{}, errors.New("pushfake: service account: private_key has no PEM block")
	}
	var key any
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k1, err1 := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err1 != nil {
			return FCMApp{}, fmt.Errorf("pushfake: service account: private_key: %w", err)
		}
		key = k1
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return FCMApp{}, errors.New("pushfake: service account: private_key is not RSA")
	}
	return FCMApp{ProjectID: sa.ProjectID, ClientEmail: sa.ClientEmail, KeyID: sa.PrivateKeyID, PublicKey: &rk.PublicKey}, nil
}
