// The real node's test app (hack/realnode.py builds its image): see main.go.
module bluegreen.local/hack/realnode-app

go 1.22
