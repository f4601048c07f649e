package order_test

import (
	"fmt"

	"github.com/eventfold/eventfold/example/orders/order"
)

func ExampleMoney_String() {
	fmt.Println(order.Money(4990), order.Money(5), order.Money(-120))
	// Output:
	// 49.90 0.05 -1.20
}
