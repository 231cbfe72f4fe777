package localcluster

import (
	"crypto/x509"
	"errors"
	"os"
)

func rootPool(caPath string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caPath)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no certificate in " + caPath)
	}
	return pool, nil
}
