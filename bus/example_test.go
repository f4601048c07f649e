package bus_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// OpenWallet and Spend are the wallet's commands; Funds is what a request
// to spend returns.
type (
	OpenWallet struct {
		Wallet string `json:"wallet"`
		Funds  int    `json:"funds"`
	}
	Spend struct {
		Wallet string `json:"wallet"`
		Amount int    `json:"amount"`
	}
	Funds struct {
		Left int `json:"left"`
	}
)

// WalletOpened and Spent are the wallet's events; Wallet is its state.
type (
	WalletEvent  interface{ isWalletEvent() }
	WalletOpened struct {
		Funds int `json:"funds"`
	}
	Spent struct {
		Amount int `json:"amount"`
	}
	Wallet struct{ Funds int }
)

func (WalletOpened) isWalletEvent() {}
func (Spent) isWalletEvent()        {}

// ErrNoFunds is the wallet's domain error.
var ErrNoFunds = errors.New("wallet: not enough funds")

var wallets = aggregate.Definition[Wallet, WalletEvent]{
	Category: "wallet",
	Evolve: func(w Wallet, e WalletEvent) Wallet {
		switch e := e.(type) {
		case WalletOpened:
			w.Funds = e.Funds
		case Spent:
			w.Funds -= e.Amount
		}
		return w
	},
}

// walletHandlers handles the wallet's commands with its repository.
type walletHandlers struct {
	repo *aggregate.Repository[Wallet, WalletEvent]
}

func (h walletHandlers) open(ctx context.Context, cmd OpenWallet) error {
	_, err := h.repo.Create(ctx, cmd.Wallet, func(Wallet) ([]WalletEvent, error) {
		return []WalletEvent{WalletOpened{Funds: cmd.Funds}}, nil
	})
	return err
}

func (h walletHandlers) spend(ctx context.Context, cmd Spend) (Funds, error) {
	res, err := h.repo.Update(ctx, cmd.Wallet, func(w Wallet) ([]WalletEvent, error) {
		if cmd.Amount > w.Funds {
			return nil, fmt.Errorf("%w: %d left, spending %d", ErrNoFunds, w.Funds, cmd.Amount)
		}
		return []WalletEvent{Spent{Amount: cmd.Amount}}, nil
	})
	return Funds{Left: res.State.Funds}, err
}

// A command bus on the default in-process transport: a command sent, a
// request and its result, and a domain error that reaches the caller
// unchanged.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	commands, _ := es.NewRegistry(es.Type[OpenWallet]("OpenWallet"), es.Type[Spend]("Spend"))
	events, _ := es.NewRegistry(es.Type[WalletOpened]("WalletOpened"), es.Type[Spent]("Spent"))
	repo, _ := aggregate.New(memstore.MustNew(), events, wallets)
	b, err := bus.New(commands, events, bus.WithErrors(ErrNoFunds))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	wallet := walletHandlers{repo: repo}
	_ = bus.HandleCommand(b, wallet.open)
	_ = bus.HandleRequest(b, wallet.spend)
	go b.Run(ctx)

	err = b.Send(ctx, OpenWallet{Wallet: "7", Funds: 100}) // in process: returns once handled
	fmt.Println("opened:", err)
	funds, err := bus.Request[Funds](ctx, b, Spend{Wallet: "7", Amount: 30})
	fmt.Println("left:", funds.Left, err)
	_, err = bus.Request[Funds](ctx, b, Spend{Wallet: "7", Amount: 500})
	fmt.Println(errors.Is(err, ErrNoFunds), err)
	err = b.Send(ctx, struct{ Unregistered bool }{})
	fmt.Println(errors.Is(err, bus.ErrNoHandler))
	// Output:
	// opened: <nil>
	// left: 70 <nil>
	// true wallet: not enough funds: 70 left, spending 500
	// true
}
