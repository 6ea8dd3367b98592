package push

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// RootCAs returns the certificate pool to trust for a provider endpoint:
// nil (the system roots) when neither pemBytes nor file is given, else the
// certificates of pemBytes, or of file when pemBytes is empty.
func RootCAs(file string, pemBytes []byte) (*x509.CertPool, error) {
	if len(pemBytes) == 0 && file == "" {
		return nil, nil
	}
	if len(pemBytes) == 0 {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		pemBytes = b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		if file != "" {
			return nil, fmt.Errorf("%s: no PEM certificate in it", file)
		}
		return nil, errors.New("no PEM certificate in the CA")
	}
	return pool, nil
}
