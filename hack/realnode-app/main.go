// A tiny static HTTP server for the real node's pods (hack/realnode.py): every answer names the
// pod's colour, pod and release, so a client can tell which colour served it.
//
//	GET /          "<colour> <pod> <release>\n"; ?sleep=MS holds the answer that long (a long request);
//	               status $FAIL_STATUS when set (a bad release: its image sets it)
//	GET /ready     200 while serving, 503 once SIGTERM arrived (the readiness probe)
//	app sleep N    sleeps N seconds (an exec preStop hook)
//	app pause      waits for a signal (the same image serves as the pod sandbox's pause container)
//
// On SIGTERM it stops accepting, closes idle keep-alive connections, lets requests in flight finish,
// then exits: what the docs ask of an app (docs/real-pods.md).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "pause":
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
			<-stop
			return
		case "sleep":
			seconds, _ := strconv.ParseFloat(os.Args[2], 64)
			time.Sleep(time.Duration(seconds * float64(time.Second)))
			return
		}
	}
	colour, pod, release := os.Getenv("COLOR"), os.Getenv("POD_NAME"), os.Getenv("RELEASE")
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	status, _ := strconv.Atoi(os.Getenv("FAIL_STATUS"))
	if status == 0 {
		status = http.StatusOK
	}
	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if ms, err := strconv.Atoi(r.URL.Query().Get("sleep")); err == nil && ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		w.Header().Set("X-Color", colour)
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s %s\n", colour, pod, release)
	})
	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		stopping.Store(true)
		// Shutdown closes idle keep-alive connections at once and waits for busy ones: a client
		// that reconnects lands on a live pod; the grace period bounds the wait.
		_ = server.Shutdown(context.Background())
		close(done)
	}()
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-done
}
