package aggregate_test

import "fmt"

// Fold replays events into a state without a store, here the account of
// the package example.
func ExampleDefinition_Fold() {
	fmt.Printf("%+v\n", accountDef.Fold(Opened{Owner: "ada"}, Deposited{Amount: 5}, Withdrawn{Amount: 2}))
	// Output: {Owner:ada Balance:3 Events:3}
}
