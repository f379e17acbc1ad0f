package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// identities are the client certificates the control plane uses. The common
// name is the user name and the organizations are the groups, exactly as
// kube-apiserver's x509 authenticator reads them.
var identities = []struct {
	file   string
	user   string
	groups []string
}{
	// system:masters is bound to cluster-admin by RBAC's bootstrap policy.
	{"admin", "kubernetes-admin", []string{"system:masters"}},
	// These two users have bootstrap ClusterRoles of their own.
	{"controller-manager", "system:kube-controller-manager", nil},
	{"scheduler", "system:kube-scheduler", nil},
	// kwok plays every kubelet and writes any Pod's status, which no
	// narrower bootstrap role allows.
	{"kwok", "kwok", []string{"system:masters"}},
}

// ensurePKI creates, on first start only, a CA, the API server's serving
// certificate, the service-account signing key and one client certificate
// and kubeconfig per identity. Later starts reuse them, so kubeconfigs
// handed out earlier keep working.
func ensurePKI(c *cluster) error {
	if _, err := os.Stat(c.path("pki", "ca.crt")); err == nil {
		// A state directory from an interrupted first start, or one edited
		// by hand, would fail later with a puzzling error; say so now.
		want := []string{c.path("pki", "ca.key"), c.path("pki", "apiserver.crt"), c.path("pki", "apiserver.key"), c.path("pki", "sa.key"), c.path("pki", "sa.pub")}
		for _, id := range identities {
			want = append(want, c.path(id.file+".kubeconfig"))
		}
		for _, f := range want {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("stale or incomplete state directory %s (%s is missing); run 'make cluster-down' to start afresh", c.dir, f)
			}
		}
		return nil
	}
	if err := os.MkdirAll(c.path("pki"), 0o700); err != nil {
		return err
	}
	caKey, caCert, err := newCert(nil, nil, pkix.Name{CommonName: "client-go-demo-ca"}, true, nil)
	if err != nil {
		return err
	}
	if err := writePair(c.path("pki", "ca"), caKey, caCert); err != nil {
		return err
	}
	// The serving certificate names every address a client may dial:
	// 127.0.0.1 from this machine, and the in-cluster names of the
	// kubernetes Service.
	serving := &x509.Certificate{
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
	}
	key, cert, err := newCert(caKey, caCert, pkix.Name{CommonName: "kube-apiserver"}, false, serving)
	if err != nil {
		return err
	}
	if err := writePair(c.path("pki", "apiserver"), key, cert); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(c.path("pki", "sa.key"), saKey); err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(c.path("pki", "sa.pub"), "PUBLIC KEY", saPub); err != nil {
		return err
	}
	for _, id := range identities {
		if err := writeUserKubeconfig(c, id.file, id.user, id.groups, caKey, caCert); err != nil {
			return err
		}
	}
	return nil
}

// writeUserKubeconfig signs a client certificate for user and writes a
// kubeconfig (mode 0600) that verifies the server against our CA.
func writeUserKubeconfig(c *cluster, file, user string, groups []string, caKey *ecdsa.PrivateKey, caCert *x509.Certificate) error {
	key, cert, err := newCert(caKey, caCert, pkix.Name{CommonName: user, Organization: groups}, false, nil)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localcluster"] = &clientcmdapi.Cluster{
		Server:                   c.serverURL(),
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		ClientKeyData:         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	cfg.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "localcluster"
	// clientcmd.WriteToFile creates the file with mode 0600.
	return clientcmd.WriteToFile(*cfg, c.path(file+".kubeconfig"))
}

// loadCA reads the CA written by ensurePKI, for signing more users.
func loadCA(c *cluster) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(c.path("pki", "ca.crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(c.path("pki", "ca.key"))
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s: not PEM", c.path("pki"))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	return key, cert, err
}

// newCert makes a key and a certificate signed by parent (self-signed when
// parent is nil). tmpl, when set, carries the subject alternative names.
func newCert(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, subject pkix.Name, isCA bool, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	if tmpl == nil {
		tmpl = &x509.Certificate{}
	}
	tmpl.SerialNumber = serial
	tmpl.Subject = subject
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().AddDate(1, 0, 0)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.NotAfter = time.Now().AddDate(10, 0, 0)
	} else if tmpl.IPAddresses != nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := parent, parentKey
	if parent == nil {
		signer, signerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func writePair(base string, key *ecdsa.PrivateKey, cert *x509.Certificate) error {
	if err := writeKey(base+".key", key); err != nil {
		return err
	}
	return writePEM(base+".crt", "CERTIFICATE", cert.Raw)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

// writePEM writes with mode 0600: keys are secrets, and certificates do not
// need to be readable by anyone else either.
func writePEM(path, typ string, der []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
