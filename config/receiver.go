package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// ReceiverAddr is the controller's --receiver-addr that WithReceiver sets.
const ReceiverAddr = ":9292"

// receiverService is the Service of the receiver endpoint.
//
//go:embed receiver/service.yaml
var receiverService []byte

// WithReceiver is install (Install, or a copy with another image) with the
// receiver endpoint on, as `kubectl kustomize config/receiver` renders it:
// the controller runs with --receiver-addr=:9292 and a container port named
// receiver, and the Service airlock-controller-receiver exposes it, ahead of
// the Deployment.
func WithReceiver(install []byte) ([]byte, error) {
	svc, err := normalize(receiverService)
	if err != nil {
		return nil, fmt.Errorf("receiver/service.yaml: %w", err)
	}
	docs := bytes.Split(install, []byte("\n---\n"))
	for i, doc := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("install manifests, document %d: %w", i+1, err)
		}
		if obj["kind"] != "Deployment" {
			continue
		}
		spec, _ := obj["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		containers, _ := pod["containers"].([]any)
		if len(containers) == 0 {
			return nil, fmt.Errorf("install manifests: Deployment %v has no container", obj["metadata"])
		}
		c, _ := containers[0].(map[string]any)
		args, _ := c["args"].([]any)
		ports, _ := c["ports"].([]any)
		c["args"] = append(args, "--receiver-addr="+ReceiverAddr)
		c["ports"] = append(ports, map[string]any{"name": "receiver", "containerPort": 9292})
		d, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		var prefix []byte
		if i == 0 {
			// The first document keeps the generated file's header comment.
			if j := bytes.Index(doc, []byte("apiVersion:")); j > 0 {
				prefix = doc[:j]
			}
		}
		if !bytes.HasSuffix(doc, []byte("\n")) {
			d = bytes.TrimSuffix(d, []byte("\n"))
		}
		docs[i] = slices.Concat(prefix, d) // never append to install's own bytes
		out := append([][]byte{}, docs[:i]...)
		out = append(out, bytes.TrimSuffix(svc, []byte("\n")))
		out = append(out, docs[i:]...)
		return bytes.Join(out, []byte("\n---\n")), nil
	}
	return nil, fmt.Errorf("install manifests: no Deployment to open the receiver endpoint on")
}

// normalize re-encodes a YAML object with sorted keys and no comments, as
// kustomize writes it.
func normalize(doc []byte) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return nil, err
	}
	return yaml.Marshal(obj)
}
