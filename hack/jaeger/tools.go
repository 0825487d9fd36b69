//go:build tools

// Package tools pins the Jaeger command this module builds, so `go mod tidy` keeps it.
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/jaeger"
)
